from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Each test keeps models and process records under its own MLTOOLKIT_HOME."""
    home = tmp_path_factory.mktemp("mltoolkit-home")
    monkeypatch.setenv("MLTOOLKIT_HOME", str(home))
    yield Path(home)


@pytest.fixture(scope="session")
def digits_model():
    """A real LogisticRegression fitted on scikit-learn's bundled digits data."""
    from mltoolkit.quickstart import train_digits

    return train_digits()
