"""cnnspec/hub.py: named weights (``transfer: from torchvision resnet18``), served from a
server on 127.0.0.1 that holds files this test generates under torchvision's naming rule
(name plus the first hex digits of the file's SHA-256); the registry entry is pointed at
it. Nothing here reaches outside the machine."""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
from pathlib import Path

import pytest
import torch
from torchvision import models

import cnnspec
from cnnspec import hub
from cnnspec.errors import WeightsError

ENTRY = models.ResNet18_Weights.IMAGENET1K_V1


class Server:
    """A threaded HTTP server on 127.0.0.1 serving ``root``, counting GET requests."""

    def __init__(self, root: Path, stall: bool = False):
        self.root, self.requests = root, []
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(root), **kw)

            def do_GET(self):
                outer.requests.append(self.path)
                if stall:
                    threading.Event().wait(5)
                    return
                super().do_GET()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    """resnet18's state_dict (random weights), saved under torchvision's naming rule."""
    root = tmp_path_factory.mktemp("served")
    torch.manual_seed(0)
    tmp = root / "resnet18.pth"
    torch.save(models.resnet18(weights=None).state_dict(), tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    final = root / f"resnet18-{digest[:8]}.pth"
    tmp.rename(final)
    return final


@pytest.fixture
def served(weights_file, tmp_path, monkeypatch):
    """The server, the registry entry pointed at it, and torch's hub cache in tmp_path."""
    server = Server(weights_file.parent)
    monkeypatch.setattr(ENTRY.value, "url", f"{server.url}/{weights_file.name}")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("CNNSPEC_OFFLINE", raising=False)
    monkeypatch.delenv("CNNSPEC_WEIGHTS_MIRROR", raising=False)
    yield server
    server.close()


def test_the_registry_gives_the_names_and_the_preprocessing():
    named = hub.resolve("torchvision", "resnet50")
    assert named.tag == "IMAGENET1K_V2"  # DEFAULT, resolved
    assert named.preprocessing == hub.Preprocessing(224, 232, "bilinear", True,
                                                    (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert (named.params, named.acc1, len(named.categories)) == (25_557_032, 80.858, 1000)
    assert named.hash_prefix == "11ad3fa6"
    with pytest.raises(WeightsError, match="did you mean 'resnet50'"):
        hub.resolve("torchvision", "resnet05")
    with pytest.raises(WeightsError, match="resnet50 has IMAGENET1K_V1, IMAGENET1K_V2"):
        hub.resolve("torchvision", "resnet50", "IMAGENET1K_V9")


def test_the_first_use_downloads_and_later_uses_make_no_request(served, weights_file):
    named = hub.resolve("torchvision", "resnet18")
    path, digest = hub.fetch(named, progress=False)
    assert path.parent == Path(torch.hub.get_dir()) / "checkpoints"
    assert path.read_bytes() == weights_file.read_bytes()
    assert digest == hashlib.sha256(weights_file.read_bytes()).hexdigest()
    assert len(served.requests) == 1
    assert hub.fetch(named, progress=False) == (path, digest)
    assert len(served.requests) == 1  # the cached copy, its hash checked again
    assert [p.name for p in path.parent.iterdir()] == [weights_file.name]


def test_a_damaged_cached_file_is_fetched_again_or_refused_offline(served, weights_file):
    named = hub.resolve("torchvision", "resnet18")
    path, _ = hub.fetch(named, progress=False)
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    with pytest.raises(WeightsError, match="damaged .* delete it and put resnet18-"):
        hub.fetch(named, offline_only=True, progress=False)
    said = []
    again, _ = hub.fetch(named, progress=False, say=said.append)
    assert "damaged" in said[0] and again.read_bytes() == weights_file.read_bytes()
    assert len(served.requests) == 2


def test_a_file_served_with_the_wrong_hash_is_refused_and_nothing_written(served, weights_file,
                                                                           monkeypatch):
    wrong = weights_file.parent / "resnet18-deadbeef.pth"
    wrong.write_bytes(weights_file.read_bytes())
    monkeypatch.setattr(ENTRY.value, "url", f"{served.url}/{wrong.name}")
    named = hub.resolve("torchvision", "resnet18")
    with pytest.raises(WeightsError, match="does not start with deadbeef.*Nothing was written"):
        hub.fetch(named, progress=False)
    assert list(named.file.parent.iterdir()) == []  # no file, no temporary left


@pytest.mark.parametrize("failure", ["offline", "down", "404", "stall"])
def test_every_failure_is_one_message_with_what_to_do(served, weights_file, monkeypatch,
                                                      failure):
    if failure == "offline":
        monkeypatch.setenv("CNNSPEC_OFFLINE", "1")
    elif failure == "down":
        with socket.socket() as s:  # a port nothing listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        monkeypatch.setenv("CNNSPEC_WEIGHTS_MIRROR", f"http://127.0.0.1:{port}/")
    elif failure == "404":
        monkeypatch.setenv("CNNSPEC_WEIGHTS_MIRROR", f"{served.url}/nothing-here/")
    else:
        stalled = Server(weights_file.parent, stall=True)
        monkeypatch.setenv("CNNSPEC_WEIGHTS_MIRROR", stalled.url)
        monkeypatch.setattr(hub, "TIMEOUT_S", 0.5)
    named = hub.resolve("torchvision", "resnet18")
    with pytest.raises(WeightsError) as exc:
        hub.fetch(named, progress=False)
    text = exc.value.render()
    assert f"put {weights_file.name} into {named.file.parent}" in text  # the same instructions
    assert {"offline": "not downloaded yet, and offline", "down": "ConnectionRefusedError",
            "404": "HTTP 404", "stall": "timed out"}[failure] in text
    assert not named.file.parent.exists() or list(named.file.parent.iterdir()) == []
    if failure == "offline":
        assert served.requests == []  # no connection at all


def test_a_gray_input_sums_the_rgb_filters_exactly():
    """The adapted conv on a gray image equals the RGB conv on the image repeated into three
    channels (timm's adapt_input_conv)."""
    from cnnspec.weights import adapt_input_channels

    rgb = torch.nn.Conv2d(3, 8, 3, bias=False)
    gray = torch.nn.Conv2d(1, 8, 3, bias=False)
    source = {"conv1.weight": rgb.weight.detach().clone()}
    note = adapt_input_channels({"C1.weight": gray.weight}, source)
    assert note.startswith("conv1.weight (8, 3, 3, 3)")
    with torch.no_grad():
        gray.weight.copy_(source["conv1.weight"])
        x = torch.rand(2, 1, 12, 12)
        assert torch.allclose(gray(x), rgb(x.repeat(1, 3, 1, 1)), atol=1e-6)


TAIL = """
train:
    epochs 1
    batch 32
    workers 0
    optimizer sgd lr 0.01 momentum 0.9
%s
transfer:
    from torchvision resnet18
    freeze up to R6
    classes from data
"""


def _gray_resnet18(tmp_path, extra: str = "") -> Path:
    """The shipped ResNet-18 on 32x32 gray images (global pooling takes any size)."""
    from conftest import SPECS

    text = (SPECS / "resnet18.cnn").read_text().replace("input 224x224x3", "input 32x32x1")
    path = tmp_path / "gray.cnn"
    path.write_text(text + TAIL % extra)
    return path


def test_preprocessing_mismatches_are_warnings_at_their_lines(tmp_path):
    from cnnspec.compiler import check, source_warnings

    path = _gray_resnet18(tmp_path, "    augment: normalize\n")
    lines = path.read_text().splitlines()
    at_input = lines.index("input 32x32x1") + 1
    at_norm = lines.index("    augment: normalize") + 1
    heads = [w.splitlines()[0] for w in source_warnings(check(path))]
    assert heads[0].startswith(f"{path}:{at_input}:1: warning: input 32x32x1: torchvision "
                               "resnet18 IMAGENET1K_V1 was trained on 224x224 crops (resized "
                               "to 256")
    assert heads[1].startswith(f"{path}:{at_norm}:14: warning: normalize: torchvision resnet18 "
                               "IMAGENET1K_V1 expects mean 0.485 0.456 0.406")
    assert "summing its filters" in heads[2]


def test_a_named_source_trains_once_fetched_and_is_recorded(served, weights_file, tmp_path,
                                                            digit_folder):
    """A gray 32x32 ResNet-18 from ``torchvision resnet18``: the file is downloaded once,
    the first conv adapted, the weights' statistics (averaged over RGB) standardise the
    inputs, the 1000-category head is replaced, and run.json records what was resolved."""
    path = _gray_resnet18(tmp_path)
    run = cnnspec.train(cnnspec.load(path), data=digit_folder, out=tmp_path / "run",
                        export=False)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    t = info["transfer"]
    assert t["named"] == "torchvision resnet18 IMAGENET1K_V1"
    assert t["sha256"] == hashlib.sha256(weights_file.read_bytes()).hexdigest()
    assert t["adapted"].startswith("conv1.weight (64, 3, 7, 7)")
    assert t["categories"] == 1000 and t["head_replaced"] == "F1"
    assert info["normalize"]["source"] == "the weights of torchvision resnet18 IMAGENET1K_V1"
    assert info["normalize"]["mean"] == pytest.approx([(0.485 + 0.456 + 0.406) / 3])
    # the frozen layers hold the file's tensors (the first conv summed over RGB)
    source = torch.load(weights_file, weights_only=True)
    assert torch.equal(run.model.state_dict()["C1.weight"],
                       source["conv1.weight"].sum(1, keepdim=True))
    assert len(served.requests) == 1


def test_classes_keep_exports_a_classifier_that_predicts_category_names(served, tmp_path,
                                                                         capsys):
    """``classes keep`` + ``compile --onnx``, no training: the named weights loaded, their
    normalisation inside, their categories as model.onnx's class names; ``predict`` on the
    file prints one."""
    from PIL import Image

    from cnnspec.cli import main
    from conftest import SPECS

    spec = tmp_path / "keep.cnn"
    spec.write_text((SPECS / "resnet18.cnn").read_text()
                    + "\ntransfer:\n    from torchvision resnet18\n    classes keep\n")
    def run(*args):
        try:
            main(list(args))
        except SystemExit as exc:
            assert exc.code in (None, 0), capsys.readouterr().err

    run("compile", str(spec), "--onnx", str(tmp_path / "net.onnx"))
    image = tmp_path / "photo.png"
    Image.new("RGB", (300, 250), (200, 120, 40)).save(image)
    capsys.readouterr()
    run("predict", str(tmp_path / "net.onnx"), str(image), "--top-k", "1")
    printed = capsys.readouterr().out
    top = printed.split(": ", 1)[1].rsplit(" ", 1)[0]
    assert top in ENTRY.meta["categories"], printed
    # training needs a head for the data's classes
    bad = tmp_path / "bad.cnn"
    bad.write_text(spec.read_text())
    with pytest.raises(cnnspec.CnnSpecError, match="write classes from data"):
        cnnspec.train(cnnspec.load(bad), out=tmp_path / "run", export=False)
