"""nbval's view of these notebooks (``pytest --nbval notebooks``).

Git keeps no execution counts (nbstripout's filter, .gitattributes: a rerun would change them), and
nbval takes a code cell without one for a cell never run, whose stored outputs it refuses to compare
("Unrun reference cell has outputs"). Here a code cell with stored outputs counts as run, so every
one of them is compared; a cell without (the compute notebooks 01 and 02 keep none: papermill fills
them per run) is run and checked for errors.
"""


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        cell = getattr(item, "cell", None)  # nbval's items: one per code cell
        if cell is not None and cell.get("outputs") and cell.get("execution_count") is None:
            cell["execution_count"] = item.cell_num + 1
