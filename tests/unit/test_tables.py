from moderndl import tables


def test_rows_of_dicts_become_a_markdown_table():
    rows = [{"name": "a|b", "value": 0.123456, "n": 3, "missing": None}, {"name": "c", "value": 2.0, "n": 4}]
    assert tables.markdown(rows).splitlines() == [
        "| name | value | n | missing |",
        "|---|---|---|---|",
        "| a\\|b | 0.1235 | 3 | – |",
        "| c | 2 | 4 | – |",
    ]
    assert tables.markdown(rows, fmt="{:.2f}").splitlines()[2] == "| a\\|b | 0.12 | 3 | – |"
    assert tables.markdown([]) == "(no rows)"
    assert tables.show(rows).data == tables.markdown(rows)


def test_cells_render_booleans_lists_and_mappings():
    assert tables.cell(True) == "yes" and tables.cell(False) == "**no**"
    assert tables.cell([1, 0.5]) == "1, 0.5"
    assert tables.cell({"max_z": 1.5361, "exact": True}) == "max_z = 1.536, exact = yes"
