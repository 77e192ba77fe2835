"""`fer-yolo batch`: image folders and video archives on Ray workers, resumable and fault-tolerant.

units.py plans the work (videos, segments of long ones, image folders), worker.py runs units through the
same process_source as `fer-yolo predict`, manifest.py records what finished, merge.py joins units into
each source's outputs and the run's tables, run.py drives it all on cluster.py's Ray. Ray is imported
only once a run starts (the `cluster` extra).
"""

from fer_yolo.batch.run import BatchReport, run_batch

__all__ = ["BatchReport", "run_batch"]
