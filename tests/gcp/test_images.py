import json

from mltoolkit.gcp import images
from tests.gcp.conftest import make_cluster


def test_registry_url_and_default_image():
    cluster = make_cluster()
    assert images.registry_url(cluster) == "us-central1-docker.pkg.dev/my-project/mltoolkit"
    assert images.default_serving_image("r.example/p/repo", "1.2.3") == "r.example/p/repo/mltoolkit-serving:1.2.3"


def test_cloud_build_config_builds_the_package_dockerfile(tmp_path):
    image = "us-central1-docker.pkg.dev/my-project/mltoolkit/mltoolkit-serving:0.1.0"
    path = images.write_cloud_build_config(tmp_path / "cloudbuild.json", image)
    config = json.loads(path.read_text())
    (step,) = config["steps"]
    assert step["name"] == "gcr.io/cloud-builders/docker"
    assert step["args"] == ["build", "-f", "mltoolkit/serving/Dockerfile", "-t", image, "."]
    assert config["images"] == [image]


def test_cloud_build_command():
    command = images.cloud_build_command(make_cluster(location="us-east1-b"), "cloudbuild.json", "/src/mltoolkit")
    assert command == [
        "gcloud", "builds", "submit", "/src/mltoolkit",
        "--project", "my-project", "--region", "us-east1", "--config", "cloudbuild.json",
    ]
