"""Board catalogue: every bundled board loads and is cited; bad files fail naming file and key."""
import re

import pytest

from cnn2gate.errors import ConfigError
from cnn2gate.hw import list_boards, load_board
from cnn2gate.paths import boards_dir

EXPECTED = {"de1soc", "de10nano", "c5soc", "de5net", "a10", "a10pac", "a10sx660", "s10", "s10mx", "agilex"}


def test_catalogue_has_the_ten_boards():
    assert set(list_boards()) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_board_loads_with_consistent_figures(name):
    b = load_board(name)
    assert b.name == name
    assert b.registers >= b.alms > 0 and b.dsp_blocks > 0 and b.ram_blocks > 0
    assert b.ram_block_bits in (10240, 20480)
    assert set(b.mults_per_dsp) == {8, 16, 27}
    assert b.mults_per_dsp[8] >= b.mults_per_dsp[16] >= b.mults_per_dsp[27] == 1
    assert all(b.dot_mults_per_dsp[w] <= b.mults_per_dsp[w] for w in (8, 16, 27))
    assert b.bsp_overhead["alms"] < 0.2 * b.alms
    assert 1 < b.mem_bandwidth_gbs <= 1000 and 50 <= b.fmax_mhz <= 1000
    assert set(b.defaults) == {"vec_size", "lane_num", "conv_gp_size_x"}
    for key, text in b.sources.items():
        assert text.strip(), key
    assert set(b.estimated) <= set(b.sources)


def test_device_figures_from_the_reference_sheet():
    de1, a10, s10 = load_board("de1soc"), load_board("a10"), load_board("s10")
    assert (de1.alms, de1.dsp_blocks, de1.ram_blocks) == (32070, 87, 397)
    assert (a10.alms, a10.dsp_blocks, a10.ram_blocks) == (427200, 1518, 2713)
    assert a10.bsp_overhead == {"alms": 33400, "ram_blocks": 179, "dsp_blocks": 0}
    assert (s10.dsp_blocks, s10.mem_bandwidth_gbs) == (5760, 76.8)
    assert de1.native_packing(8) == 3 and a10.native_packing(8) == 2 and a10.dot_packing(16) == 2


def test_estimates_are_marked():
    assert "fmax_mhz" in load_board("agilex").estimated
    assert "alms" not in load_board("a10").estimated


def test_unknown_board_lists_the_available_ones():
    with pytest.raises(ConfigError, match="unknown board 'zynq'.*a10.*de1soc"):
        load_board("zynq")


def _copy(tmp_path, edit):
    text = (boards_dir() / "a10.toml").read_text()
    path = tmp_path / "custom.toml"
    path.write_text(edit(text))
    return path


def test_board_file_by_path(tmp_path):
    path = _copy(tmp_path, lambda t: t.replace('name = "a10"', 'name = "mine"'))
    assert load_board(str(path)).name == "mine"


@pytest.mark.parametrize("edit, key", [
    (lambda t: re.sub(r"^dsp_blocks = .*$", "", t, flags=re.M), "dsp_blocks"),
    (lambda t: t.replace("dsp_blocks = 1518", 'dsp_blocks = "many"'), "dsp_blocks"),
    (lambda t: t.replace("fmax_mhz = 218.0", "fmax_mhz = -1.0"), "fmax_mhz"),
    (lambda t: t.replace("bsp = ", "colour = \"red\"\nbsp = "), "colour"),
    (lambda t: t.replace("mults_per_dsp = { 8 = 2,", "mults_per_dsp = { 9 = 2,"), "mults_per_dsp"),
    (lambda t: t.replace("alms = 33400", "alms = 500000"), "bsp_overhead.alms"),
    (lambda t: t.replace("lane_num = 32\n", ""), "defaults"),
    (lambda t: re.sub(r"^fmax_mhz = \"PipeCNN.*$", "", t, flags=re.M), "sources.fmax_mhz"),
])
def test_bad_board_file_names_file_and_key(tmp_path, edit, key):
    path = _copy(tmp_path, edit)
    with pytest.raises(ConfigError) as err:
        load_board(str(path))
    assert str(path) in str(err.value) and repr(key) in str(err.value)


def test_missing_board_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_board(str(tmp_path / "nope.toml"))


def test_invalid_toml(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("name = \n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_board(str(path))
