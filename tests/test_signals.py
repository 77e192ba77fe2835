import signal
import threading

import pytest

from fer_yolo.utils.signals import deferred_interrupt, terminate_as_interrupt


def test_ctrl_c_waits_for_the_block_then_interrupts():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupt():
            signal.raise_signal(signal.SIGINT)
            done.append("first")
            done.append("second")
    assert done == ["first", "second"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_no_ctrl_c_no_interrupt():
    with deferred_interrupt():
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler  # Ctrl-C held in the block
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_other_threads_run_the_block_as_is():
    errors = []

    def work():
        try:
            with deferred_interrupt():  # signal.signal would raise ValueError off the main thread
                pass
        except Exception as e:  # noqa: BLE001 - reported to the main thread
            errors.append(e)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert errors == []


def test_kill_acts_as_ctrl_c_and_waits_for_a_deferred_block():
    before = signal.getsignal(signal.SIGTERM)
    done = []
    with pytest.raises(KeyboardInterrupt), terminate_as_interrupt():
        with deferred_interrupt():
            signal.raise_signal(signal.SIGTERM)
            done.append("all of it")
        done.append("not this")
    assert done == ["all of it"]
    assert signal.getsignal(signal.SIGTERM) is before
