import threading

from mltoolkit.local.supervisor import (
    MAX_DELAY_S,
    Liveness,
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


class HungProcess:
    """A live process whose health check the test controls; kill() records the reason."""

    def __init__(self, started_at=0.0):
        self.answering = True
        self.killed = []
        self.entry = Restartable(
            "p", lambda: None, lambda: None, started_at=started_at,
            live=lambda: self.answering, kill=self.killed.append,
        )  # fmt: skip


def test_a_process_that_stops_answering_its_health_check_is_killed_after_the_timeout():
    hung = HungProcess()
    supervisor = Supervisor(lambda: [hung.entry], liveness=Liveness(timeout_s=3, interval_s=0.5))
    assert not supervisor.check_liveness(hung.entry, now=1.0)  # answers
    hung.answering = False
    for now in (1.5, 2.0, 3.0, 4.0):  # failing for up to 3 s: still given time
        assert not supervisor.check_liveness(hung.entry, now=now)
    assert supervisor.check_liveness(hung.entry, now=4.5)
    assert hung.killed == ["no answer to its health check for 3.5 s (limit 3 s)"]
    assert hung.entry.hung_kills == 1


def test_probes_are_spaced_and_an_answer_resets_the_clock():
    hung = HungProcess()
    supervisor = Supervisor(lambda: [hung.entry], liveness=Liveness(timeout_s=3, interval_s=0.5))
    assert not supervisor.check_liveness(hung.entry, now=1.0)
    hung.answering = False
    assert not supervisor.check_liveness(hung.entry, now=3.5)
    hung.answering = True
    assert not supervisor.check_liveness(hung.entry, now=3.7)  # within the interval: not probed
    assert not supervisor.check_liveness(hung.entry, now=4.0)  # answered again
    hung.answering = False
    assert not supervisor.check_liveness(hung.entry, now=6.9)
    assert supervisor.check_liveness(hung.entry, now=7.5)


def test_a_starting_process_gets_the_startup_time_before_it_must_answer():
    hung = HungProcess(started_at=10.0)
    hung.answering = False
    supervisor = Supervisor(
        lambda: [hung.entry], liveness=Liveness(timeout_s=1, interval_s=0.5, startup_s=20)
    )
    assert not supervisor.check_liveness(hung.entry, now=29.0)
    assert supervisor.check_liveness(hung.entry, now=30.5)


def test_no_liveness_without_the_setting_or_for_a_dead_process():
    hung = HungProcess()
    hung.answering = False
    assert not Supervisor(lambda: [hung.entry]).check_liveness(hung.entry, now=100.0)
    hung.entry.exit_code = lambda: -9
    supervisor = Supervisor(lambda: [hung.entry], liveness=Liveness(timeout_s=1))
    assert not supervisor.check_liveness(hung.entry, now=100.0)
    assert hung.killed == []
