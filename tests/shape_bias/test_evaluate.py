"""Native evaluation: the 16-class mapping, decisions, CSV round trip, real SqueezeNet."""
import json

import pytest
import torch
from torch import nn

from topk_plugin.shape_bias.categories import CATEGORIES, category_indices, decisions, probabilities_to_16class
from topk_plugin.shape_bias.evaluate import evaluate_model
from topk_plugin.shape_bias.metrics import shape_bias
from topk_plugin.shape_bias.mvh_csv import COLUMNS, csv_name, read_trials, write_trials

from .test_dataset import make_set


def test_package_data_matches_model_vs_human_lists(shared_dir):
    shared = json.loads((shared_dir / "data" / "16class_indices.json").read_text())
    assert list(CATEGORIES) == shared["categories"]
    assert category_indices() == shared["indices"]
    assert sum(map(len, category_indices().values())) == 207


def test_mapping_is_the_mean_over_each_category():
    probs = torch.softmax(torch.randn(4, 1000, generator=torch.Generator().manual_seed(0)), 1)
    mapped = probabilities_to_16class(probs)
    for j, category in enumerate(CATEGORIES):
        idx = category_indices()[category]
        expected = [sum(probs[i, k].item() for k in idx) / len(idx) for i in range(4)]
        assert mapped[:, j].tolist() == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="1000"):
        probabilities_to_16class(torch.zeros(2, 10))


def test_mean_not_sum_decides():
    """'knife' has one index, 'dog' many: a sum would favour dog, the mean picks knife."""
    logits = torch.full((1, 1000), -20.0)
    logits[0, category_indices()["knife"]] = 5.0
    logits[0, category_indices()["dog"]] = 4.0
    assert decisions(logits) == ["knife"]


class Constant(nn.Module):
    """Always votes for one category, whatever the image."""

    def __init__(self, category):
        super().__init__()
        self.logits = torch.full((1000,), -10.0)
        self.logits[category_indices()[category]] = 10.0
        self.seen = []

    def forward(self, x):
        self.seen.append(x)
        return self.logits.expand(x.shape[0], -1)


def test_evaluate_streams_batches_and_writes_csv(tmp_path):
    root = make_set(tmp_path / "cc", per_category=3)
    from topk_plugin.shape_bias.dataset import CueConflictDataset

    model = Constant("cat")
    ev = evaluate_model(model, CueConflictDataset(root, per_category=3), name="const_cat", batch_size=5,
                        workers=2, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), progress=False)
    assert len(ev.trials) == 48 and {t.decision for t in ev.trials} == {"cat"}
    assert [x.shape[0] for x in model.seen] == [5] * 9 + [3]
    assert all(-2.0 - 1e-6 <= x.min() and x.max() <= 2.0 + 1e-6 for x in model.seen)  # (0..1 - .5)/.25
    path = write_trials(ev.trials, "const_cat", tmp_path / "out")
    assert path.name == csv_name("const_cat") == "cue-conflict_const-cat_session-1.csv"
    header = path.read_text().splitlines()[0]
    assert header.split(",") == COLUMNS
    again = shape_bias(read_trials(path))
    assert (again.shape_bias, again.shape_or_texture, again.accuracy) == (
        ev.result.shape_bias, ev.result.shape_or_texture, ev.result.accuracy)


def test_wrong_head_is_a_clear_error(tmp_path):
    root = make_set(tmp_path / "cc", per_category=1)
    from topk_plugin.shape_bias.dataset import CueConflictDataset

    with pytest.raises(ValueError, match="1000 ImageNet logits"):
        evaluate_model(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 10)), CueConflictDataset(root, per_category=1),
                       workers=0, progress=False)


def test_squeezenet_native_equals_csv_path(shared_dir, tmp_path):
    """Real pretrained SqueezeNet 1.1 on all 1280 stimuli; its CSV re-scores identically."""
    import torchvision

    model = torchvision.models.squeezenet1_1()
    model.load_state_dict(torch.load(shared_dir / "weights" / "squeezenet1_1_imagenet_torchvision_norm.pth"))
    ev = evaluate_model(model, shared_dir / "data" / "cue-conflict", name="squeezenet1_1", batch_size=64,
                        workers=1, progress=False)
    result = ev.result
    assert result.n_images == 1280 and result.n_conflict == 1200
    assert not result.near_chance and 0.1 < result.shape_bias < 0.6  # a working, texture-biased CNN
    recomputed = shape_bias(read_trials(write_trials(ev.trials, "squeezenet1_1", tmp_path)))
    assert recomputed.shape_bias == result.shape_bias
    assert recomputed.per_category == result.per_category
    assert recomputed.shape_or_texture == result.shape_or_texture


class TinyNet(nn.Module):
    """A conv net with 1000 logits, small enough for bfloat16 on the CPU in a test."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Linear(8, 1000)
        self.seen = []

    def forward(self, x):
        self.seen.append((x.dtype, x.device))
        return self.fc(self.features(x).flatten(1))


def _tensors(model):
    return {name: (t, t.data_ptr(), t.dtype, t.is_contiguous(memory_format=torch.channels_last))
            for name, t in [*model.named_parameters(), *model.named_buffers()]}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_inputs_follow_the_models_dtype_and_the_model_comes_back_as_it_was(tmp_path, dtype):
    from topk_plugin.shape_bias.imagenet import evaluate_imagenet, imagenet_wnids

    from .test_imagenet import _save

    root = make_set(tmp_path / "cc", per_category=1)
    for i, wnid in enumerate(imagenet_wnids()[:3]):
        _save(tmp_path / "in" / f"{wnid}_{i}.png", (80 * i, 0, 0))
    model = TinyNet().to(dtype).to(memory_format=torch.channels_last).train()
    before = _tensors(model)
    from topk_plugin.shape_bias.dataset import CueConflictDataset

    ev = evaluate_model(model, CueConflictDataset(root, per_category=1), workers=0, progress=False, batch_size=8)
    top1 = evaluate_imagenet(model, tmp_path / "in", workers=0, progress=False)
    assert len(ev.trials) == 16 and top1.n_images == 3
    assert {seen for seen in model.seen} == {(dtype, torch.device("cpu"))}
    after = _tensors(model)
    assert {n: v[1:] for n, v in after.items()} == {n: v[1:] for n, v in before.items()}  # storage, dtype, format
    assert all(after[n][0] is before[n][0] for n in before)  # the very tensors
    assert model.training and all(m.training for m in model.modules())


def test_an_evaluation_between_training_steps_leaves_parameters_and_gradients_as_they_were(tmp_path):
    from topk_plugin.shape_bias.dataset import CueConflictDataset

    model = TinyNet().train()
    model(torch.randn(2, 3, 16, 16)).sum().backward()
    grads = {name: (p.grad, p.grad.clone()) for name, p in model.named_parameters()}
    evaluate_model(model, CueConflictDataset(make_set(tmp_path / "cc", per_category=1), per_category=1), workers=0,
                   progress=False)
    for name, p in model.named_parameters():
        assert p.grad is grads[name][0] and torch.equal(p.grad, grads[name][1]), name
        assert p.grad.is_contiguous() and p.is_contiguous(), name
