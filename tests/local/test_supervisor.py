import threading

from mltoolkit.local.supervisor import (
    MAX_DELAY_S,
    STABLE_AFTER_S,
    Restartable,
    Supervisor,
    restart_delay,
)


def test_restart_delay_backs_off_and_is_capped():
    # First restart at once; then 0.5 s doubling per quick failure; never above the cap.
    assert [restart_delay(n) for n in range(5)] == [0.0, 0.5, 1.0, 2.0, 4.0]
    assert restart_delay(100) == MAX_DELAY_S


class FakeProcess:
    """A process whose exit code the test sets; restart() makes it run again."""

    def __init__(self, started_at=0.0):
        self.code = None
        self.restarts = 0
        self.entry = Restartable("p", lambda: self.code, self.restart, started_at=started_at)

    def restart(self):
        self.restarts += 1
        self.code = None


def test_a_dead_process_is_restarted_at_once_the_first_time():
    fake = FakeProcess(started_at=0.0)
    supervisor = Supervisor(lambda: [fake.entry])
    assert supervisor.check(fake.entry, now=1.0) is False  # alive: nothing to do
    fake.code = -9
    assert supervisor.check(fake.entry, now=2.0) is True
    assert fake.restarts == 1


def test_a_crash_loop_waits_longer_each_time():
    fake = FakeProcess(started_at=0.0)
    supervisor = Supervisor(lambda: [fake.entry])
    fake.code = 1
    assert supervisor.check(fake.entry, now=1.0)
    fake.entry.started_at = 1.0  # pin the clock: the restarted process died 0.2 s later
    fake.code = 1
    assert not supervisor.check(fake.entry, now=1.2)  # one quick failure: wait 0.5 s
    assert not supervisor.check(fake.entry, now=1.6)
    assert supervisor.check(fake.entry, now=1.75)
    assert fake.restarts == 2


def test_a_process_that_ran_long_enough_resets_the_back_off():
    fake = FakeProcess(started_at=0.0)
    fake.entry.quick_failures = 5
    supervisor = Supervisor(lambda: [fake.entry])
    fake.code = 1
    assert supervisor.check(fake.entry, now=STABLE_AFTER_S + 1)
    assert fake.entry.quick_failures == 1


def test_a_failing_restart_is_retried_later():
    calls = []

    def broken_restart():
        calls.append(1)
        raise OSError("cannot start")

    entry = Restartable("p", lambda: 1, broken_restart, started_at=0.0)
    supervisor = Supervisor(lambda: [entry])
    try:
        supervisor.check(entry, now=20.0)
    except OSError:
        pass
    assert not supervisor.check(entry, now=20.1)  # backing off after the failure
    assert len(calls) == 1


def test_the_thread_restarts_and_stops():
    fake = FakeProcess()
    restarted = threading.Event()
    original = fake.restart

    def restart():
        original()
        restarted.set()

    fake.entry.restart = restart
    supervisor = Supervisor(lambda: [fake.entry], interval_s=0.01)
    supervisor.start()
    try:
        fake.code = -9
        assert restarted.wait(timeout=20)
    finally:
        supervisor.stop()
    assert not supervisor.running
