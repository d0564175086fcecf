"""The shape-only table printed by shape-bias and search-placement."""
from topk_plugin.cli.suite_output import shape_only_table


def _row(name: str, accuracy: float) -> dict:
    return {"name": name, "dataset": "edge", "accuracy": accuracy, "accuracy_ci": [accuracy - 0.1, accuracy + 0.1]}


def test_columns_line_up_whatever_the_length_of_a_name():
    humans = [{"dataset": "edge", "n_subjects": 10, "accuracy": 0.871, "accuracy_ci": [0.839, 0.901],
               "error_consistency": 0.318, "error_consistency_ci": [0.221, 0.41]}]
    lines = shape_only_table([_row("tf_efficientnet_lite0_control-best-of-the-search", 0.388), _row("dense", 0.356)],
                             humans).splitlines()
    starts = {line.index(value) for line, value in zip(lines[1:4], ("0.871", "0.388", "0.356"), strict=True)}
    assert len(starts) == 1, lines[:4]
