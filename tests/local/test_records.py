from pathlib import Path

from mltoolkit.local.records import (
    DeploymentRecord,
    ProcessRecord,
    RecordStore,
    default_state_dir,
    new_deployment_id,
)


def make_record(deployment_id="digits-abc"):
    return DeploymentRecord(
        deployment_id=deployment_id,
        owner_pid=123,
        owner_create_time=1.5,
        model_name="digits",
        processes=[
            ProcessRecord("replica", "digits-0", "node-0", 5000, ["py", "-m", "x"], "/l/0.log", 7, 2.5),
            ProcessRecord("balancer", "digits-balancer", None, 5001, ["py"], "/l/b.log"),
        ],
    )


def test_record_round_trips_through_its_file(tmp_path):
    store = RecordStore(tmp_path / "state")
    record = make_record()
    path = store.write(record)
    assert path == tmp_path / "state" / "digits-abc.json"
    assert store.read("digits-abc") == record
    record.processes[1].pid = 99
    store.write(record)
    assert store.read("digits-abc").processes[1].pid == 99
    assert [p.name for p in path.parent.iterdir()] == ["digits-abc.json"]  # no temp file left


def test_iterating_skips_files_that_are_not_records(tmp_path):
    store = RecordStore(tmp_path)
    store.write(make_record("a-1"))
    (tmp_path / "junk.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"unexpected": 1}')
    assert [r.deployment_id for r in store] == ["a-1"]


def test_remove_is_idempotent(tmp_path):
    store = RecordStore(tmp_path)
    store.write(make_record())
    store.remove("digits-abc")
    store.remove("digits-abc")
    assert store.read("digits-abc") is None
    assert list(store) == []


def test_missing_state_dir_has_no_records(tmp_path):
    assert list(RecordStore(tmp_path / "nowhere")) == []


def test_default_state_dir_follows_mltoolkit_home(monkeypatch, tmp_path):
    monkeypatch.setenv("MLTOOLKIT_HOME", str(tmp_path))
    assert default_state_dir() == tmp_path / "local"
    monkeypatch.delenv("MLTOOLKIT_HOME")
    assert default_state_dir() == Path.home() / ".mltoolkit" / "local"


def test_deployment_ids_are_unique_and_start_with_the_model():
    ids = {new_deployment_id("digits") for _ in range(50)}
    assert len(ids) == 50
    assert all(i.startswith("digits-") for i in ids)


def test_records_and_the_state_folder_are_readable_by_the_owner_only(tmp_path):
    store = RecordStore(tmp_path / "state")
    path = store.write(make_record())
    assert path.stat().st_mode & 0o777 == 0o600
    assert store.state_dir.stat().st_mode & 0o777 == 0o700
