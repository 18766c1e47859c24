"""scripts/check-deploy.py passes on deploy/ and catches what it is there to catch."""
import os
import shutil
import subprocess
import tempfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHECK = os.path.join(REPO, "scripts", "check-deploy.py")


def check(repo):
    return subprocess.run(["/usr/bin/python3", CHECK, repo], capture_output=True, text=True, timeout=120)


def broken_copy(edit):
    """A copy of what the check reads, with `edit(root)` applied."""
    root = tempfile.mkdtemp(prefix="sympow-deploy-")
    for part in ("deploy", "scripts", "models"):
        shutil.copytree(os.path.join(REPO, part), os.path.join(root, part))
    for name in ("CMakeLists.txt",):
        shutil.copy(os.path.join(REPO, name), root)
    for part in ("server", "clients", "model"):
        for dirpath, _, files in os.walk(os.path.join(REPO, part)):
            if "CMakeLists.txt" in files:
                target = os.path.join(root, os.path.relpath(dirpath, REPO))
                os.makedirs(target, exist_ok=True)
                shutil.copy(os.path.join(dirpath, "CMakeLists.txt"), target)
    edit(root)
    return root


def replace_in(path, old, new):
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace(old, new))


def test_the_repositorys_deploy_files_pass():
    result = check(REPO)
    assert result.returncode == 0, result.stdout
    assert "sympow:cpu" in result.stdout and "sympow:cuda" in result.stdout


def test_a_missing_file_an_unbuilt_image_and_a_stale_router_config_are_caught():
    def edit(root):
        replace_in(os.path.join(root, "deploy", "compose", "docker-compose.yml"), "./prometheus.yml", "./nope.yml")
        replace_in(os.path.join(root, "deploy", "k8s", "sympow.yaml"), "image: sympow:cuda", "image: sympow:gpu")
        replace_in(os.path.join(root, "deploy", "k8s", "sympow.yaml"), "replicas: 3", "replicas: 4")
    root = broken_copy(edit)
    try:
        result = check(root)
    finally:
        shutil.rmtree(root)
    assert result.returncode == 1
    assert "nope.yml not found" in result.stdout
    assert "sympow:gpu" in result.stdout
    assert "rendered for the 4 StatefulSet replicas" in result.stdout
