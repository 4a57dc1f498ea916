import json

import pytest

from lightsnn.space.genotype import CellGenotype, Genotype, GenotypeError


def test_snasnet_strings_round_trip():
    g = Genotype.from_str("0302 0030 3003 0000")
    assert g.to_str() == "0302 0030 3003 0000"
    cell = g.cells[0]
    assert cell.op((0, 1)) == "conv3x3" and cell.op((0, 3)) == "conv1x1"
    assert cell.op((2, 0)) == "conv3x3" and cell.op((2, 3)) == "conv3x3"
    assert cell.has_backward
    two = Genotype.from_str("0303 0030 2002 0200 | 0101 0000 0000 0000")
    assert len(two.cells) == 2 and two.cell_for(1).op((0, 1)) == "skip"
    assert Genotype.from_str(two.to_str()) == two


def test_json_form_names_ops_and_holds_parameterised_ops():
    g = Genotype.from_json({"cells": [{"0->3": "conv3x3(th=0.5)", "0->1": "skip", "1->3": "zero"}]})
    text = g.to_str()
    assert text.startswith("{")  # no op code for a parameterised op
    assert Genotype.from_str(text) == g
    assert json.loads(text) == {"cells": [{"0->1": "skip", "0->3": "conv3x3(th=0.5)"}]}


def test_validity_rule_prunes_unconnected_nodes():
    # node 2 only receives from 1 and sends nowhere: it cannot reach the output and is dropped
    cell = CellGenotype.from_edges({(0, 3): "conv3x3", (0, 1): "skip", (1, 2): "conv3x3", (1, 3): "skip"})
    pruned = cell.pruned()
    assert pruned.to_dict() == {"0->1": "skip", "0->3": "conv3x3", "1->3": "skip"}
    assert pruned.is_valid() and pruned.pruned() == pruned
    # node 2 feeds the output but is reachable from nothing: dropped too
    cell = CellGenotype.from_edges({(0, 3): "skip", (2, 3): "conv3x3"})
    assert cell.pruned().to_dict() == {"0->3": "skip"}
    # reachability counts backward edges: 0->3, 3->1 (next step), 1->3
    cell = CellGenotype.from_edges({(0, 3): "skip", (3, 1): "conv3x3", (1, 3): "conv1x1"})
    assert cell.pruned() == cell
    # without the direct input->output edge the cell is rejected
    assert not CellGenotype.from_edges({(0, 1): "skip", (1, 3): "skip"}).is_valid()
    with pytest.raises(GenotypeError, match="no input->output edge"):
        Genotype.from_str("0100 0001 0000 0000", require_valid=True)


def test_canonical_form_and_stable_hash():
    a = Genotype.from_str("0303 0030 0000 0000")  # 0->1->2 leads nowhere: nodes 1 and 2 are dropped
    assert a.canonical().to_str() == "0003 0000 0000 0000"
    assert a.short_hash() == Genotype.from_str("0003 0000 0000 0000").short_hash()
    b = Genotype.from_str("0301 0000 0000 0000 | 0301 0000 0000 0000")
    assert b.canonical() == Genotype.from_str("0001 0000 0000 0000")  # pruned; equal cells collapse to one
    assert b.short_hash() == Genotype.from_str("0301 0000 0000 0000").short_hash()
    assert a.short_hash() != b.short_hash()
    # the hash names files: it must not change between versions or runs
    assert Genotype.from_str("0302 0030 3003 0000").short_hash() == "e65886388b"


@pytest.mark.parametrize("bad, message", [
    ("0302 0030 3003", "expected 4 groups of 4 digits"),
    ("0302 0030 3x03 0000", "expected 4 groups of 4 digits"),
    ("1302 0030 3003 0000", "diagonal"),
    ("0902 0030 3003 0000", "op code 9"),
    ("", "empty"),
    ("{not json", "does not parse"),
    ('{"cells": [{"0-3": "skip"}]}', "bad edge key"),
    ('{"cells": [{"0->3": "conv7"}]}', "unknown op"),
    ('{"cells": [{}, {}, {}]}', "1 \\(shared\\) or 2 cells"),
])
def test_bad_strings_name_what_is_wrong(bad, message):
    with pytest.raises(GenotypeError, match=message):
        Genotype.from_str(bad)


@pytest.mark.parametrize("text, connected", [
    ("0000 0000 0000 0000", False),
    ("0001 0000 0000 0000", True),
    ("0100 0000 0001 0000", False),        # 0->1 and 2->3: the two halves never meet
    ("0010 0001 0100 0000", True),         # 0->2, backward 2->1 (next timestep), 1->3
    ("0302 0030 3003 0000", True),
])
def test_connectivity_from_input_to_output(text, connected):
    genotype = Genotype.from_str(text)
    assert genotype.cells[0].connects_input_to_output() is connected
    if not connected:
        with pytest.raises(GenotypeError, match="no path of non-zero edges"):
            genotype.require_connected()
