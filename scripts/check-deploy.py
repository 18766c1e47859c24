"""Checks deploy/: every manifest and compose file parses, and refers only to files that exist
and to images this repository builds (deploy/docker, `-t NAME` in their headers) or pins from an
upstream registry; the k8s router config is the nginx template rendered for the StatefulSet.

usage: check-deploy.py [REPO]     exit 0 when all is well, else 1 with one line per problem
"""
import json
import os
import re
import sys

import yaml

UPSTREAM = ("prom/prometheus:", "grafana/grafana:", "nginx:")


def built_images(repo):
    """Image names the Dockerfiles say they build (docker build ... -t NAME), and their files."""
    images = {}
    docker_dir = os.path.join(repo, "deploy", "docker")
    for name in sorted(os.listdir(docker_dir)):
        path = os.path.join(docker_dir, name)
        with open(path) as f:
            for tag in re.findall(r"docker build -f \S+ -t (\S+)", f.read()):
                images[tag] = path
    return images


def check_dockerfile(repo, path, problems):
    with open(path) as f:
        text = f.read()
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, re.MULTILINE):
        if not os.path.exists(os.path.join(repo, source)):
            problems.append(f"{path}: COPY {source}: no such file in the repository")
    cmake = ""
    for root, _, files in os.walk(repo):
        if "CMakeLists.txt" in files and "/build" not in root and "/.git" not in root:
            with open(os.path.join(root, "CMakeLists.txt")) as f:
                cmake += f.read()
    for targets in re.findall(r"--target ([^\n\\]+)", text):
        for target in targets.split():
            if not re.search(rf"add_(executable|library)\({re.escape(target)}\b", cmake):
                problems.append(f"{path}: builds target {target}, which no CMakeLists.txt defines")


def check_image(where, image, images, problems):
    if image in images or image.startswith(UPSTREAM) and ":" in image and not image.endswith(":latest"):
        return
    problems.append(f"{where}: image {image} is neither built here ({', '.join(images)}) nor a pinned upstream one")


def check_compose(repo, images, problems):
    path = os.path.join(repo, "deploy", "compose", "docker-compose.yml")
    base = os.path.dirname(path)
    with open(path) as f:
        compose = yaml.safe_load(f)
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            context = os.path.normpath(os.path.join(base, build["context"]))
            if not os.path.exists(os.path.join(context, build["dockerfile"])):
                problems.append(f"{path}: {name}: dockerfile {build['dockerfile']} not found")
            if service.get("image") not in images:
                problems.append(f"{path}: {name}: builds {service.get('image')}, which deploy/docker does not tag")
        else:
            check_image(f"{path}: {name}", service["image"], images, problems)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                if not os.path.exists(os.path.normpath(os.path.join(base, source))):
                    problems.append(f"{path}: {name}: volume source {source} not found")
            elif source not in compose.get("volumes", {}):
                problems.append(f"{path}: {name}: named volume {source} is not declared")


def check_k8s(repo, images, problems):
    k8s = os.path.join(repo, "deploy", "k8s")
    documents = []
    for name in sorted(os.listdir(k8s)):
        with open(os.path.join(k8s, name)) as f:
            documents += [(name, d) for d in yaml.safe_load_all(f) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for _, d in documents}
    replicas = 0
    for name, document in documents:
        spec = document.get("spec", {})
        template = spec.get("template", {}).get("spec", {})
        for container in template.get("containers", []):
            check_image(f"deploy/k8s/{name}: {container['name']}", container["image"], images, problems)
        for volume in template.get("volumes", []):
            claim = volume.get("persistentVolumeClaim", {}).get("claimName")
            config = volume.get("configMap", {}).get("name")
            if claim and ("PersistentVolumeClaim", claim) not in kinds:
                problems.append(f"deploy/k8s/{name}: claim {claim} is not defined")
            if config and ("ConfigMap", config) not in kinds:
                problems.append(f"deploy/k8s/{name}: ConfigMap {config} is not defined")
        if document["kind"] == "StatefulSet":
            replicas = spec["replicas"]
            service = spec["serviceName"]
    with open(os.path.join(repo, "deploy", "nginx", "sympow.conf.template")) as f:
        template = f.read()
    for name, document in documents:
        if document["kind"] == "ConfigMap" and "nginx.conf" in document["data"]:
            listen = re.search(r"listen (\S+) http2", document["data"]["nginx.conf"]).group(1)
            prefix = re.search(r"pid (\S+)/nginx.pid", document["data"]["nginx.conf"]).group(1)
            rendered = (template.replace("@LISTEN@", listen).replace("@PREFIX@", prefix)
                        .replace("@REPLICAS@", "\n    ".join(f"server {service.split('.')[0]}-{i}.{service}:50051;"
                                                            for i in range(replicas))))
            if document["data"]["nginx.conf"].strip() != rendered.strip():
                problems.append(f"deploy/k8s/{name}: nginx.conf is not deploy/nginx/sympow.conf.template "
                                f"rendered for the {replicas} StatefulSet replicas")


def check_grafana(repo, problems):
    with open(os.path.join(repo, "deploy", "grafana", "sympow.json")) as f:
        dashboard = json.load(f)
    if not all(target.get("expr") for panel in dashboard["panels"] for target in panel["targets"]):
        problems.append("deploy/grafana/sympow.json: a panel target has no expr")
    for sub in ("datasources", "dashboards"):
        for name in os.listdir(os.path.join(repo, "deploy", "grafana", "provisioning", sub)):
            with open(os.path.join(repo, "deploy", "grafana", "provisioning", sub, name)) as f:
                yaml.safe_load(f)


def main():
    repo = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
    problems = []
    images = built_images(repo)
    for path in set(images.values()):
        check_dockerfile(repo, path, problems)
    check_compose(repo, images, problems)
    check_k8s(repo, images, problems)
    check_grafana(repo, problems)
    with open(os.path.join(repo, "deploy", "compose", "prometheus.yml")) as f:
        yaml.safe_load(f)
    for problem in problems:
        print(problem)
    print(f"deploy/: {len(problems)} problems; images built here: {', '.join(sorted(images))}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
