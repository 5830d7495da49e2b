"""The tutorial's six lessons: their numbers, their figures, the index page and the command-line glue."""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image
from rich.console import Console

from digitlab import lessons
from digitlab.errors import DigitlabError
from digitlab.lessons import activations, autograd, classification, cnn, cnn_figures, regression, tensors
from digitlab.models import count_parameters, load_model, shipped_weights
from digitlab.models.tutorial import TutorialCNN

SEEDS = range(10)


def quiet() -> Console:
    return Console(file=io.StringIO(), width=100)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="digitlab lesson")
    lessons.add_arguments(parser)
    return parser.parse_args(list(argv))


# --- the tutorial's numbers ----------------------------------------------------------------------------


def test_tensors_round_trip_maths_and_the_dot_trap() -> None:
    result = tensors.lesson(console=quiet())
    assert result.round_trip == [[0, 1, 2], [3, 4, 5]]
    assert result.shares_memory
    assert result.numpy_vs_torch["abs"] == ([1, 2, 1, 2], [1.0, 2.0, 1.0, 2.0])
    assert result.numpy_vs_torch["mean"] == (0.0, 0.0)
    numpy_sin, torch_sin = result.numpy_vs_torch["sin"]
    assert torch_sin == pytest.approx(numpy_sin, abs=1e-6)
    assert result.matmul == [[7, 10], [15, 22]]
    assert result.numpy_vs_torch["matmul"][0] == [[7, 10], [15, 22]]
    # Today's torch refuses 2-D input to dot; the flattened call gives the tutorial's old 30.
    assert "1D tensors expected" in result.dot_2d_error
    assert result.dot_flat == 30


def test_autograd_mean_of_squares_and_its_gradient() -> None:
    out = quiet()
    result = autograd.lesson(console=out)
    assert result.t_out == 7.5
    assert result.v_out == 7.5
    assert result.grad == [[0.5, 1.0], [1.5, 2.0]]
    assert result.grad_fn_chain == ["MeanBackward0", "MulBackward0", "AccumulateGrad"]
    assert "detach().numpy()" in result.numpy_error
    assert result.detached == [[1.0, 2.0], [3.0, 4.0]]
    assert "MeanBackward0 -> MulBackward0 -> AccumulateGrad" in out.file.getvalue()


def test_activations_values_without_figures() -> None:
    result = activations.lesson(console=quiet())
    assert len(result.x) == 200 and result.x[0] == -5 and result.x[-1] == 5
    assert result.samples["relu"] == [0, 0, 0, 1, 5]
    assert result.samples["sigmoid"][2] == 0.5
    assert result.samples["tanh"][2] == 0
    assert result.samples["softplus"][2] == pytest.approx(0.6931, abs=1e-4)
    assert sum(result.softmax) == pytest.approx(1.0)
    assert max(result.softmax) == result.softmax[3]
    assert result.figures == []


@pytest.fixture(scope="module")
def regression_sweep() -> dict[int, tuple[regression.RegressionResult, str]]:
    runs = {}
    for seed in SEEDS:
        console = quiet()
        result = regression.lesson(seed=seed, console=console)
        runs[seed] = (result, " ".join(console.file.getvalue().split()))  # Undo rich's line wrapping.
    return runs


def test_regression_median_mse_over_seeds(regression_sweep: dict) -> None:
    mses = [result.final_mse for result, _ in regression_sweep.values()]
    assert statistics.median(mses) <= 0.01
    assert abs(regression.NOISE_FLOOR - 0.0033) < 1e-4
    # Every run learned something: the loss fell from where it started.
    for result, _ in regression_sweep.values():
        assert result.final_mse < result.losses[0]
        assert len(result.losses) == 100


def test_regression_says_when_a_seed_got_stuck(regression_sweep: dict) -> None:
    stuck = {seed for seed, (result, _) in regression_sweep.items() if result.stuck}
    # lr 0.5 strands a few seeds (1, 3 and 5 with torch 2.x), never most of them.
    assert 1 <= len(stuck) <= 4
    for seed, (result, text) in regression_sweep.items():
        assert result.stuck == (result.final_mse > regression.STUCK_FACTOR * regression.NOISE_FLOOR)
        assert f"final MSE: {result.final_mse:.4f}" in text
        if result.stuck:
            # The explanation printed must be the true one: most of the hidden ReLUs are dead.
            assert "got stuck" in text and "dead" in text, seed
            assert result.dead_at_end >= result.hidden // 2
        else:
            assert "got stuck" not in text


def test_regression_smaller_lr_rescues_a_stuck_seed(regression_sweep: dict) -> None:
    seed = next(seed for seed, (result, _) in regression_sweep.items() if result.stuck)
    rescued = regression.lesson(seed=seed, lr=0.2, steps=200, console=quiet())
    assert rescued.final_mse < regression_sweep[seed][0].final_mse / 3


def test_classification_accuracy_for_every_seed() -> None:
    for seed in SEEDS:
        result = classification.lesson(seed=seed, console=quiet())
        assert result.accuracy >= 0.985, (seed, result.accuracy)
        assert result.final_loss < result.losses[0]
        assert len(result.accuracies) == 100


def test_seed_makes_runs_identical() -> None:
    a = regression.lesson(seed=4, steps=30, console=quiet())
    b = regression.lesson(seed=4, steps=30, console=quiet())
    c = regression.lesson(seed=5, steps=30, console=quiet())
    assert a.losses == b.losses and a.final_mse == b.final_mse
    assert a.losses != c.losses
    d = classification.lesson(seed=4, steps=30, console=quiet())
    e = classification.lesson(seed=4, steps=30, console=quiet())
    assert d.losses == e.losses


def test_overrides_are_used() -> None:
    result = regression.lesson(seed=0, steps=7, lr=0.1, points=33, hidden=4, console=quiet())
    assert (result.steps, result.lr, result.points, result.hidden) == (7, 0.1, 33, 4)
    assert len(result.losses) == 7
    result = classification.lesson(seed=0, steps=3, points=20, console=quiet())
    assert len(result.losses) == 3 and result.points == 20


def test_lessons_restore_torch_thread_count() -> None:
    before = torch.get_num_threads()
    regression.lesson(steps=2, console=quiet())
    assert torch.get_num_threads() == before


# --- figures, GIFs and the index page --------------------------------------------------------------------


@pytest.fixture(scope="module")
def all_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("lessons") / "out"
    stdout = io.StringIO()
    real = sys.stdout
    sys.stdout = stdout  # rich's Console writes to whatever sys.stdout is at print time.
    try:
        with pytest.MonkeyPatch.context() as patch:
            # The CNN's 400 steps are measured by hand (README); 20 steps, a frame every 5, test the plumbing.
            patch.setattr(cnn, "STEPS", 20)
            patch.setattr(cnn, "EVERY", 5)
            assert lessons.run(parse("all", "--out", str(out))) == 0
    finally:
        sys.stdout = real
    return out, stdout.getvalue()


def test_all_writes_valid_figures(all_out: tuple[Path, str]) -> None:
    out, _ = all_out
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "activations.png",
        "classification.gif",
        "classification.png",
        "confusion.png",
        "embedding.gif",
        "embedding.png",
        "feature_maps.png",
        "filters.png",
        "index.html",
        "mistakes.png",
        "regression.gif",
        "regression.png",
        "softmax.png",
    ]  # ... and no temporary files left behind.
    with Image.open(out / "embedding.gif") as image:
        assert image.n_frames == 5  # Steps 0, 5, 10, 15, 20 of the shortened CNN run.
    for name in ["activations.png", "softmax.png", "regression.png", "classification.png"]:
        with Image.open(out / name) as image:
            image.verify()
        with Image.open(out / name) as image:
            assert image.format == "PNG"
            assert image.width >= 600 and image.height >= 300
    for name in ["regression.gif", "classification.gif"]:
        with Image.open(out / name) as image:
            assert image.format == "GIF"
            assert image.is_animated
            assert 15 <= image.n_frames <= 25  # 100 steps, a frame every 5, plus the final one.
            assert 300 <= image.width <= 600
        assert (out / name).stat().st_size < 400_000
    assert (out / "regression.png").stat().st_mode & 0o044 == 0o044  # Readable by a browser or web server.


def test_all_writes_an_index_page(all_out: tuple[Path, str]) -> None:
    out, stdout = all_out
    page = (out / "index.html").read_text(encoding="utf-8")
    for name in ["activations.png", "softmax.png", "regression.gif", "classification.png", "embedding.gif"]:
        assert f'src="{name}"' in page  # Relative links: the folder can be moved as a whole.
    assert str(out) not in page
    # The lessons appear in order, with what they printed, HTML-escaped.
    positions = [page.index(f'id="{name}"') for name in lessons.LESSONS]
    assert positions == sorted(positions)
    assert "Can&#x27;t call numpy()" in page
    assert "1D tensors expected" in page
    assert "final accuracy" in page
    assert "416 + 12,832 + 15,690 = 28,938" in page
    assert "Lesson 6" in page and "six lessons" in page
    assert "step   20 | train loss:" in page and "clusters:" in page
    assert page.count("<pre>") >= 12
    # Stdout carries the same lessons and says where the files went.
    assert "final MSE" in stdout and "index.html" in stdout


def test_figures_are_reproducible(tmp_path: Path) -> None:
    first = regression.lesson(seed=2, steps=20, out=tmp_path / "a", console=quiet())
    second = regression.lesson(seed=2, steps=20, out=tmp_path / "b", console=quiet())
    for a, b in zip(first.figures, second.figures, strict=True):
        assert a.read_bytes() == b.read_bytes()
    with Image.open(first.figures[1]) as gif:
        assert gif.n_frames == 21  # One frame per step when there are only 20 steps, plus the final one.


def test_activation_figures_look_like_the_tutorial(tmp_path: Path) -> None:
    result = activations.lesson(out=tmp_path, console=quiet())
    assert [p.name for p in result.figures] == ["activations.png", "softmax.png"]
    with Image.open(tmp_path / "activations.png") as image:
        assert image.size == (800, 600)  # The tutorial's figsize (8, 6).


# --- the command-line glue -------------------------------------------------------------------------------


def test_add_arguments_defaults() -> None:
    args = parse("regression")
    assert args.lesson == "regression"
    assert args.out == Path("lessons-out")
    assert (args.seed, args.show) == (0, False)
    assert (args.steps, args.lr, args.points, args.hidden) == (None, None, None, None)
    with pytest.raises(SystemExit):
        parse("gan")


def test_single_lesson_prints_and_writes_no_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert lessons.run(parse("classification", "--out", str(tmp_path), "--steps", "10", "--seed", "3")) == 0
    stdout = capsys.readouterr().out
    assert "seed 3" in stdout and "10 steps" in stdout and "final accuracy" in stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classification.gif", "classification.png"]


def test_text_lessons_need_no_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "never-made"
    assert lessons.run(parse("autograd", "--out", str(out))) == 0
    assert "[[0.5, 1.0], [1.5, 2.0]]" in capsys.readouterr().out
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["regression", "--steps", "-5"], "--steps"),
        (["classification", "--steps", "0"], "--steps"),
        (["regression", "--lr", "0"], "--lr"),
        (["regression", "--lr", "nan"], "--lr"),
        (["classification", "--points", "-1"], "--points"),
        (["all", "--hidden", "0"], "--hidden"),
        (["regression", "--seed", "-1"], "--seed"),
        (["tensors", "--steps", "5"], "only applies"),
        (["cnn", "--points", "5"], "--points only applies to the regression and classification"),
        (["regression", "--model", "tutorial"], "only applies to the cnn lesson"),
        (["cnn", "--model", "strong"], "'strong' model"),
        (["cnn", "--model", "tutorial", "--steps", "5"], "give one or other"),
        (["cnn", "--data", "no-such-folder"], "no such file"),
        (["cnn", "--steps", "0"], "--steps"),
    ],
)
def test_bad_input_is_a_digitlab_error(argv: list[str], message: str, tmp_path: Path) -> None:
    with pytest.raises(DigitlabError, match=message):
        lessons.run(parse(*argv, "--out", str(tmp_path)))
    assert list(tmp_path.iterdir()) == []  # Nothing ran, nothing was written.


def test_lesson_functions_check_their_arguments() -> None:
    with pytest.raises(DigitlabError, match="--steps"):
        regression.lesson(steps=-1, console=quiet())
    with pytest.raises(DigitlabError, match="--lr"):
        classification.lesson(lr=float("inf"), console=quiet())


def test_out_must_be_a_folder(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("not a folder")
    with pytest.raises(DigitlabError, match="not a folder"):
        lessons.run(parse("activations", "--out", str(target)))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="display detection by environment: Linux")
def test_show_without_a_display_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(DigitlabError, match="display"):
        lessons.run(parse("regression", "--show", "--out", str(tmp_path)))
    assert list(tmp_path.iterdir()) == []


def test_show_draws_live_and_writes_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # No display here, so pretend there is one and let pyplot draw off-screen; the live code path still runs.
    import matplotlib.pyplot as plt

    from digitlab.lessons import report

    previous = plt.get_backend()
    plt.switch_backend("agg")
    monkeypatch.setattr(report, "require_display", lambda: None)
    monkeypatch.setattr(plt, "pause", lambda interval: None)
    monkeypatch.setattr(plt, "show", lambda block=None: None)
    try:
        out = tmp_path / "out"
        assert lessons.run(parse("regression", "--show", "--steps", "10", "--out", str(out))) == 0
        assert lessons.run(parse("activations", "--show", "--out", str(out))) == 0
        assert lessons.run(parse("cnn", "--show", "--steps", "10", "--out", str(out))) == 0
        assert not out.exists()
        assert plt.get_fignums() == []  # Every window was closed again.
    finally:
        plt.switch_backend(previous)


def test_regression_slow_run_is_not_blamed_on_dead_relus() -> None:
    console = quiet()
    result = regression.lesson(seed=0, steps=10, console=console)
    text = " ".join(console.file.getvalue().split())  # Undo rich's line wrapping.
    assert result.stuck and result.dead_at_end < result.hidden // 2
    assert "slow rather than dead" in text and "got stuck" not in text


@pytest.mark.parametrize("terminal", [True, False])
def test_training_log_keeps_the_progress_bar_out_of_the_record(terminal: bool) -> None:
    from digitlab.lessons import report

    console = Console(file=io.StringIO(), record=True, force_terminal=terminal, width=80)
    console.print("before")
    with report.TrainingLog(console, total=3) as log:
        for step in range(3):
            log.advance()
            log.print(f"step {step}")
    console.print("after")
    # On a terminal the bar was drawn; the record (and so index.html) holds only the printed lines, once each.
    assert ("━" in console.file.getvalue()) == terminal
    assert console.export_text() == "before\nstep 0\nstep 1\nstep 2\nafter\n"
    assert console.record


# --- lesson 6: the CNN -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[cnn.CnnResult, str, Path]:
    """A short CNN lesson on the real MNIST: 40 steps with a look every 5 at 1,000 test digits, figures and all."""
    out = tmp_path_factory.mktemp("cnn")
    console = quiet()
    result = cnn.lesson(seed=1, steps=40, every=5, test_digits=1000, out=out, console=console)
    return result, " ".join(console.file.getvalue().split()), out  # Undo rich's line wrapping.


def test_cnn_parameters_per_layer_add_up() -> None:
    net = TutorialCNN()
    conv1 = 16 * 1 * 5 * 5 + 16
    conv2 = 32 * 16 * 5 * 5 + 32
    out = 10 * (32 * 7 * 7) + 10
    assert (conv1, conv2, out) == (416, 12_832, 15_690)
    assert conv1 + conv2 + out == count_parameters(net) == 28_938


def test_cnn_prints_and_returns_the_parameter_count(cnn_run: tuple) -> None:
    result, text, _ = cnn_run
    assert result.parameters == {"conv1": 416, "conv2": 12_832, "out": 15_690}
    assert result.total_parameters == sum(result.parameters.values()) == 28_938
    assert "416 + 12,832 + 15,690 = 28,938" in text
    assert "16·1·5·5 + 16" in text and "10·1568 + 10" in text


def test_cnn_default_run_is_a_few_hundred_steps_with_enough_frames() -> None:
    frames = cnn.checkpoint_steps(cnn.STEPS, cnn.EVERY)
    assert 200 <= cnn.STEPS <= 600 and cnn.EVERY == 50  # The tutorial printed every 50 steps.
    assert frames[0] == 0 and frames[-1] == cnn.STEPS and len(frames) >= 8
    assert cnn.checkpoint_steps(12, 5) == [0, 5, 10, 12]  # The last step always gets a frame.


def test_cnn_trains_and_prints_every_checkpoint(cnn_run: tuple) -> None:
    result, text, _ = cnn_run
    steps = [point.step for point in result.checkpoints]
    assert steps == list(range(0, 41, 5))
    assert len(result.losses) == 40
    first, last = result.checkpoints[0], result.checkpoints[-1]
    assert first.train_loss is None and last.train_loss == pytest.approx(np.mean(result.losses[35:]))
    # 40 steps already teach it most digits, and its map of digits pulls apart.
    assert first.test_accuracy < 0.3 < 0.8 < last.test_accuracy
    assert last.test_loss < first.test_loss
    assert last.separation > first.separation
    for point in result.checkpoints:
        assert f"step {point.step} |" in text
        assert f"test accuracy: {point.test_accuracy:.2f} | clusters: {point.separation:.0%}" in text
    assert result.filter_change is not None and result.filter_change > 0.05


def test_cnn_writes_its_figures(cnn_run: tuple) -> None:
    result, _, out = cnn_run
    names = ["filters.png", "feature_maps.png", "mistakes.png", "confusion.png", "embedding.png", "embedding.gif"]
    assert [p.name for p in result.figures] == names
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    for name in names[:-1]:
        with Image.open(out / name) as image:
            image.verify()
    with Image.open(out / "embedding.gif") as gif:
        assert gif.is_animated and gif.n_frames == len(result.checkpoints) == 9
    assert (out / "embedding.gif").stat().st_size < 600_000
    # The panels actually drawn: 16 filters; the input, one map before and after pooling, 16 maps, 32 maps;
    # one digit per mistake shown; one confusion matrix.
    assert result.panels == {
        "filters.png": 16,
        "feature_maps.png": 3 + 16 + 32,
        "mistakes.png": min(cnn.GALLERY, len(result.mistakes)),
        "confusion.png": 1,
    }
    assert len(result.mistakes) > cnn.GALLERY  # After 40 steps there are plenty to show.


def test_cnn_figure_panels_show_the_numbers_they_claim() -> None:
    weight = np.random.default_rng(0).normal(size=(16, 1, 5, 5))
    fig = Figure()
    cnn_figures.draw_filters(fig, weight)
    drawn = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(drawn) == 16
    for i, image in enumerate(drawn):
        np.testing.assert_array_equal(image, weight[i, 0])

    fig = Figure()
    rng = np.random.default_rng(1)
    before = rng.random((16, 28, 28))
    cnn_figures.draw_feature_maps(
        fig, rng.random((28, 28)), 7, before, rng.random((16, 14, 14)), rng.random((32, 7, 7)), shown=3
    )
    shapes = [ax.images[0].get_array().shape for ax in fig.axes if ax.images]
    assert shapes.count((14, 14)) == 16 + 1 and shapes.count((7, 7)) == 32 and shapes.count((28, 28)) == 2
    np.testing.assert_array_equal(fig.axes[1].images[0].get_array(), before[3])


def test_cnn_mistakes_and_confusion_agree(cnn_run: tuple) -> None:
    result, text, _ = cnn_run
    counts = np.array(result.confusion)
    assert counts.sum() == 1000
    assert len(result.mistakes) == 1000 - np.trace(counts)
    assert result.accuracy == pytest.approx(np.trace(counts) / 1000)
    confidences = [m.p_read for m in result.mistakes]
    assert confidences == sorted(confidences, reverse=True)
    for m in result.mistakes:
        assert m.read != m.true and m.p_read >= m.p_second and m.second != m.read
    both_ways = counts + counts.T
    np.fill_diagonal(both_ways, 0)
    a, b = result.most_confused
    assert both_ways[a, b] == both_ways.max()
    assert f"The most confused pair is {a} and {b}" in text


def test_cnn_features_are_the_models_own_forward() -> None:
    from digitlab.data.idx import load_idx_split

    net, _ = load_model("tutorial")
    images, _ = load_idx_split(Path(__file__).resolve().parents[1] / "data" / "mnist", "test")
    features, logits = cnn.last_layer_input(net, images[:150])
    assert features.shape == (150, 1568)
    with torch.no_grad():
        expected = net(images[:150].unsqueeze(1).float() / 255)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)


def test_cnn_seed_makes_runs_identical() -> None:
    a = cnn.lesson(seed=3, steps=10, every=5, test_digits=500, console=quiet())
    b = cnn.lesson(seed=3, steps=10, every=5, test_digits=500, console=quiet())
    c = cnn.lesson(seed=4, steps=10, every=5, test_digits=500, console=quiet())
    assert a.losses == b.losses and a.checkpoints == b.checkpoints
    np.testing.assert_array_equal(a.embedding, b.embedding)
    assert a.mistakes == b.mistakes and a.confusion == b.confusion
    assert a.losses != c.losses
    assert a.figures == []  # No --out, nothing drawn.


def test_cnn_map_of_digits_numbers() -> None:
    labels = np.repeat(np.arange(10), 20)
    points = np.stack([labels * 10.0, np.zeros(200)], axis=1)
    assert cnn_figures.separation(points, labels) == pytest.approx(1.0)  # Each digit is a single point.
    mixed = np.random.default_rng(0).normal(size=(200, 2))
    assert cnn_figures.separation(mixed, labels) < 0.15
    features = torch.from_numpy(np.random.default_rng(1).normal(size=(300, 40))).float()
    features[:, 0] *= 10  # The direction of most spread.
    xy = cnn_figures.pca_2d(features, None)
    assert abs(np.corrcoef(xy[:, 0], features[:, 0].numpy())[0, 1]) > 0.99
    flipped = cnn_figures.pca_2d(features, -xy)  # Agrees in sign with the frame before it.
    np.testing.assert_allclose(flipped, -xy, atol=1e-4)


def test_cnn_lesson_opens_up_a_given_model(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "digitlab", "lesson", "cnn", "--model", "tutorial", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    stdout = " ".join(result.stdout.split())
    meta = json.loads(shipped_weights("tutorial").with_suffix(".json").read_text())
    # Nothing trained: the numbers are the shipped model's own.
    assert "nothing is trained" in stdout and "step 50 |" not in stdout
    assert f"reads {meta['metrics']['test_accuracy']:.2%} correctly" in stdout
    assert "416 + 12,832 + 15,690 = 28,938" in stdout
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["confusion.png", "embedding.png", "feature_maps.png", "filters.png", "mistakes.png"]

