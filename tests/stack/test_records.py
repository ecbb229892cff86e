from mltoolkit.stack.records import RecordStore, StackRecord


def test_write_read_remove(tmp_path):
    store = RecordStore(tmp_path / "records")
    record = StackRecord(stack="dev", project="mltoolkit", backend="gs://team", owner="alice",
                         expires="20250131t1530z", model_name="digits")
    store.write(record)
    again = store.read("mltoolkit", "dev", "gs://team")
    assert again == record and again.updated_at
    assert store.read("mltoolkit", "dev", "file:///elsewhere") is None  # keyed by backend too
    store.remove("mltoolkit", "dev", "gs://team")
    assert store.read("mltoolkit", "dev", "gs://team") is None


def test_unreadable_record_is_none(tmp_path):
    store = RecordStore(tmp_path)
    record = StackRecord(stack="dev", project="p", backend="b", owner="o")
    (tmp_path / f"{record.key}.json").write_text("{not json")
    assert store.read("p", "dev", "b") is None
