"""realtime.promote: SCHED_FIFO for the calling thread only, when the OS allows it."""
import os
import threading

import pytest

from live_rnnrbm.live.realtime import is_realtime, promote


@pytest.mark.skipif(not hasattr(os, "sched_setscheduler"), reason="no POSIX real-time scheduling here")
def test_promote_changes_only_the_calling_thread():
    result = {}

    def worker():
        result["ok"] = promote(3)
        result["rt"] = is_realtime()

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert result["rt"] == result["ok"]          # it says what it did
    assert not is_realtime()                     # this thread untouched
    if os.geteuid() == 0:
        assert result["ok"]                      # root may always


def test_promote_refused_is_false_not_an_error(monkeypatch):
    def refuse(*args):
        raise PermissionError(1, "Operation not permitted")
    monkeypatch.setattr(os, "sched_setscheduler", refuse, raising=False)
    assert promote(5) is False
