import os
import stat

from mltoolkit.stack.passphrase import (
    PASSPHRASE_FILE_VAR,
    ensure_passphrase_file,
    passphrase_env,
    passphrase_file,
)


def test_generated_once_owner_only_and_only_its_path_is_passed(tmp_path):
    env = passphrase_env(tmp_path, environ={})
    path = passphrase_file(tmp_path)
    assert env == {PASSPHRASE_FILE_VAR: str(path)}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = path.read_text()
    assert len(secret) >= 40 and secret not in str(env)
    passphrase_env(tmp_path, environ={})
    assert path.read_text() == secret  # kept, not regenerated


def test_user_passphrase_wins(tmp_path):
    assert passphrase_env(tmp_path, environ={"PULUMI_CONFIG_PASSPHRASE": "s3cret"}) == {}
    assert passphrase_env(tmp_path, environ={"PULUMI_CONFIG_PASSPHRASE": ""}) == {}  # empty is a valid passphrase
    assert passphrase_env(tmp_path, environ={PASSPHRASE_FILE_VAR: "/team/pass"}) == {}
    assert not passphrase_file(tmp_path).exists()


def test_loose_permissions_are_tightened(tmp_path):
    path = passphrase_file(tmp_path)
    path.write_text("old")
    os.chmod(path, 0o644)
    ensure_passphrase_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == "old"
