"""The browsable leaderboard (leaderboard/site/): built from the shipped submissions into a temporary folder,
checked as files (determinism, escaping, ``build --check``) and driven in a real headless Chromium.

The browser tests need Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``,
``/usr/bin/chromedriver``) and selenium. Without them they skip locally; with
``SUBCLASSBENCH_REQUIRE_BROWSER=1`` (set by ``.ci/run``, which installs them) they fail instead.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from subclassbench.leaderboard.board import build
from subclassbench.leaderboard.site import embed_json, render_site, site_document
from tests.conftest import REPO

CHROMIUM = Path(os.environ.get("SUBCLASSBENCH_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("SUBCLASSBENCH_CHROMEDRIVER", "/usr/bin/chromedriver"))
SITE_FILES = ["site/app.js", "site/index.html", "site/style.css"]
# Each piece would run script or add elements if it reached the page as markup.
HOSTILE = '</script><script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">&amp;<!--'


@pytest.fixture(scope="module")
def board_dir(tmp_path_factory) -> Path:
    """leaderboard/ built from the shipped submissions (read only) into a temporary folder."""
    out = tmp_path_factory.mktemp("board") / "leaderboard"
    build(REPO / "submissions", out)
    return out


@pytest.fixture(scope="module")
def board(board_dir: Path) -> dict[str, Any]:
    return json.loads((board_dir / "leaderboard.json").read_text())


def _embedded(html: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="board-data">(.*?)</script>', html, re.S)
    assert found is not None
    return json.loads(found.group(1))


def _hostile_board(board: dict[str, Any]) -> dict[str, Any]:
    """The board with hostile strings wherever a submission supplies text that the page shows."""
    hostile = copy.deepcopy(board)
    row = next(iter(hostile["tasks"].values()))[0]
    row.update(submission=HOSTILE, encoder="builtin:" + HOSTILE, label_task=HOSTILE, license=HOSTILE)
    row["curve"][0]["layer"] = HOSTILE
    hostile["stale"] = [dict(row, stale=HOSTILE)]
    return hostile


# --------------------------------------------------------------------------- files


def test_build_writes_the_site_from_leaderboard_json(board_dir, board):
    assert sorted(p.relative_to(board_dir).as_posix() for p in (board_dir / "site").iterdir()) == SITE_FILES
    embedded = _embedded((board_dir / "site" / "index.html").read_text())
    assert embedded == site_document(board)  # the page shows exactly the machine-readable board
    rows = [r for task_rows in board["tasks"].values() for r in task_rows]
    assert [(r["task"], r["model"]) for r in embedded["rows"]] == [(r["task"], r["submission"]) for r in rows]
    first = embedded["rows"][0]["cells"]
    assert first["ami"]["v"] == rows[0]["committed_ami"]
    ci = rows[0]["ci95"]["committed_ami"]
    assert first["ami"]["t"] == f"{rows[0]['committed_ami']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"  # as the markdown board
    assert {r["filters"]["architecture"] for r in embedded["rows"]} >= {"builtin:digits_cnn", "builtin:cifar_resnet20"}


def test_the_site_is_deterministic_and_check_finds_it_up_to_date(board_dir, board):
    files = render_site(board)
    assert files == render_site(copy.deepcopy(board))
    for name, data in files.items():
        assert (board_dir / name).read_bytes() == data, name
    assert build(REPO / "submissions", board_dir, check=True) == []


def test_check_detects_a_stale_or_missing_site(board_dir, tmp_path):
    out = tmp_path / "leaderboard"
    shutil.copytree(board_dir, out)
    index = out / "site" / "index.html"
    index.write_text(index.read_text().replace("cifar-resnet56", "cifar-resnet57"))
    (out / "site" / "style.css").unlink()
    assert sorted(build(REPO / "submissions", out, check=True)) == ["site/index.html", "site/style.css"]
    assert sorted(build(REPO / "submissions", out)) == ["site/index.html", "site/style.css"]  # and a build fixes it
    assert build(REPO / "submissions", out, check=True) == []


def test_embedded_json_cannot_close_its_script_block():
    value = {"name": HOSTILE, "note": "a > b && c < d", "unicode": "é —\u2028"}
    text = embed_json(value)
    assert not set(text) & set("<>&") and text.isascii()
    assert json.loads(text) == value


def test_a_hostile_name_is_never_markup_in_the_html(board):
    html = render_site(_hostile_board(board))["site/index.html"].decode()
    # Only the template's own two script elements; the data never opens, closes or comments anything.
    assert html.count("<script") == 2 and html.count("</script>") == 2 and "<img" not in html
    assert "__pwned" in html and "<!--<" not in html
    embedded = _embedded(html)
    assert embedded["rows"][0]["model"] == HOSTILE and embedded["stale"][0]["reason"] == HOSTILE


def test_the_app_never_writes_markup_from_data():
    """app.js builds the page with textContent/setAttribute only: no innerHTML, outerHTML, insertAdjacentHTML,
    document.write or eval that a data string could reach."""
    source = (REPO / "subclassbench" / "leaderboard" / "site_assets" / "app.js").read_text()
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("//"))
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function", code)
    assert "http://" not in code.replace("http://www.w3.org/2000/svg", "") and "https://" not in code  # offline


# --------------------------------------------------------------------------- the page in a real browser


def _browser_unavailable() -> str | None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        return f"{' and '.join(missing)} not found (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -r requirements.txt)"
    return None


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    reason = _browser_unavailable()
    if reason is not None:
        if os.environ.get("SUBCLASSBENCH_REQUIRE_BROWSER"):
            pytest.fail(f"SUBCLASSBENCH_REQUIRE_BROWSER is set but {reason}")
        pytest.skip(f"no headless browser: {reason}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Both paths are given, so Selenium Manager never runs; SE_OFFLINE makes sure it would not download anyway.
    os.environ.setdefault("SE_OFFLINE", "true")
    profile = tempfile.mkdtemp(prefix="subclassbench-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [
        "--headless=new",
        "--no-sandbox",  # root in CI
        "--disable-gpu",
        "--disable-background-networking",  # no connections attempted on a closed network
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
    ]:
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield chrome
    finally:
        chrome.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _open(driver: Any, index: Path, view: str = "task=") -> None:
    """Open the page on ``view`` (the address's fragment; "task=" shows every task, "" the page's default)."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(index.as_uri() + (f"#{view}" if view else ""))
    driver.refresh()  # a fragment-only change of the same file would not reload the page
    WebDriverWait(driver, 10).until(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))


def _visible_rows(driver: Any) -> list[Any]:
    from selenium.webdriver.common.by import By

    return [tr for tr in driver.find_elements(By.CSS_SELECTOR, "tbody tr[data-model]") if tr.is_displayed()]


def _values(driver: Any, col: str) -> list[str]:
    script = (
        "return Array.from(document.querySelectorAll('tbody tr[data-model]')).filter(tr => !tr.hidden)"
        f".map(tr => tr.querySelector('td[data-col=\"{col}\"]').dataset.value)"
    )
    return driver.execute_script(script)


def _numbers(values: list[str]) -> list[float | None]:
    return [None if v == "" else float(v) for v in values]


def test_clicking_a_header_sorts_and_toggles(driver, board_dir, board):
    from selenium.webdriver.common.by import By

    _open(driver, board_dir / "site" / "index.html")
    n_rows = sum(len(rows) for rows in board["tasks"].values())
    assert len(_visible_rows(driver)) == n_rows
    header = driver.find_element(By.CSS_SELECTOR, 'th[data-col="ami"]')
    header.click()  # a metric: best first
    assert header.get_attribute("aria-sort") == "descending"
    shown = _numbers(_values(driver, "ami"))
    assert shown == sorted(shown, reverse=True) and len(shown) == n_rows
    assert shown[0] == max(r["committed_ami"] for rows in board["tasks"].values() for r in rows)
    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    assert _numbers(_values(driver, "ami")) == sorted(shown)
    # OOD retained: most rows have none, and they stay at the bottom in both directions.
    ood = driver.find_element(By.CSS_SELECTOR, 'th[data-col="ood"]')
    for _ in range(2):
        ood.click()
        values = _numbers(_values(driver, "ood"))
        present = [v for v in values if v is not None]
        descending = ood.get_attribute("aria-sort") == "descending"
        assert present and values == sorted(present, reverse=descending) + [None] * (len(values) - len(present))
    assert header.get_attribute("aria-sort") is None  # only the sorted column is marked
    model = driver.find_element(By.CSS_SELECTOR, 'th[data-col="model"]')
    model.click()
    assert _values(driver, "model") == sorted(_values(driver, "model"))
    assert [tr.get_attribute("data-model") for tr in _visible_rows(driver)] == _values(driver, "model")


def test_filters_show_only_matching_rows(driver, board_dir, board):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _open(driver, board_dir / "site" / "index.html")
    rows = [r for task_rows in board["tasks"].values() for r in task_rows]
    task = Select(driver.find_element(By.ID, "filter-task"))
    assert [o.get_attribute("value") for o in task.options] == ["", *sorted(board["tasks"])]
    task.select_by_value("cifar10-5")
    visible = _visible_rows(driver)
    assert {tr.get_attribute("data-task") for tr in visible} == {"cifar10-5"}
    assert len(visible) == len(board["tasks"]["cifar10-5"])
    Select(driver.find_element(By.ID, "filter-labels")).select_by_value("superclass")
    wanted = [r["submission"] for r in rows if r["task"] == "cifar10-5" and r["labels"] == "superclass"]
    assert [tr.get_attribute("data-model") for tr in _visible_rows(driver)] == wanted and wanted
    assert driver.find_element(By.ID, "row-count").text == f"showing {len(wanted)} of {len(rows)} rows"
    task.select_by_value("")
    Select(driver.find_element(By.ID, "filter-labels")).select_by_value("")
    Select(driver.find_element(By.ID, "filter-architecture")).select_by_value("builtin:digits_cnn")
    visible = _visible_rows(driver)
    assert visible and {tr.get_attribute("data-architecture") for tr in visible} == {"builtin:digits_cnn"}
    assert len(visible) == sum(r["encoder"].startswith("builtin:digits_cnn") for r in rows)
    Select(driver.find_element(By.ID, "filter-task")).select_by_value("cifar10-5")  # no digits row there
    assert _visible_rows(driver) == [] and driver.find_element(By.ID, "no-rows").is_displayed()


def test_a_row_opens_its_per_layer_curve(driver, board_dir, board):
    from selenium.webdriver.common.by import By

    _open(driver, board_dir / "site" / "index.html")
    row = board["tasks"]["cifar10-5"][0]
    key = f"{row['task']}/{row['submission']}"
    tr = driver.find_element(By.CSS_SELECTOR, f'tbody tr[data-key="{key}"]')
    tr.find_element(By.CSS_SELECTOR, 'td[data-col="model"]').click()
    panel = driver.find_element(By.CSS_SELECTOR, f'tr.curve-row[data-for="{key}"]')
    assert panel.is_displayed()
    line = panel.find_element(By.CSS_SELECTOR, "svg.curve path.curve-line").get_attribute("d")
    assert line.startswith("M") and line.count("L") == len(row["curve"]) - 1  # one vertex per layer
    assert panel.find_elements(By.CSS_SELECTOR, "svg.curve path.curve-band")  # every layer has an interval
    marker = panel.find_element(By.CSS_SELECTOR, "svg.curve g.committed-marker")
    assert marker.get_attribute("data-layer") == row["committed_layer"]
    assert len(panel.find_elements(By.CSS_SELECTOR, "svg.curve circle.point")) == len(row["curve"])
    # Sorting keeps the open curve under its row.
    driver.find_element(By.CSS_SELECTOR, 'th[data-col="model"]').click()
    following = driver.execute_script(
        "return document.querySelector(arguments[0]).nextElementSibling.dataset.for", f'tr[data-key="{key}"]'
    )
    assert following == key
    tr.find_element(By.CSS_SELECTOR, "button.curve-toggle").click()  # the button closes it again
    assert not panel.is_displayed()
    assert tr.find_element(By.CSS_SELECTOR, "button.curve-toggle").get_attribute("aria-expanded") == "false"


def test_a_hostile_name_is_shown_as_text_and_runs_nothing(driver, board, tmp_path):
    from selenium.webdriver.common.by import By

    for name, data in render_site(_hostile_board(board)).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    _open(driver, tmp_path / "site" / "index.html")
    assert driver.execute_script("return typeof window.__pwned") == "undefined"
    # Nothing the data carries became an element (checked apart from the page's CSP, which would also block it).
    assert len(driver.find_elements(By.TAG_NAME, "script")) == 2 and not driver.find_elements(By.TAG_NAME, "img")
    tr = driver.find_element(By.CSS_SELECTOR, "tbody tr[data-model]")
    assert tr.get_attribute("data-model") == HOSTILE
    assert tr.find_element(By.CSS_SELECTOR, 'td[data-col="model"]').text == HOSTILE
    assert HOSTILE in driver.find_element(By.ID, "stale-list").text
    tr.click()
    assert driver.find_element(By.CSS_SELECTOR, "svg.curve circle.point").get_attribute("data-layer") == HOSTILE
    assert driver.execute_script("return typeof window.__pwned") == "undefined"


def test_the_page_opens_on_one_task_and_the_address_keeps_the_view(driver, board_dir, board):
    """Ranks and AMI compare within a task: the first view shows one (the task with the most rows), and the
    address keeps the view, so a copied link opens the same filters and sort."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from subclassbench.leaderboard.site import default_task

    index = board_dir / "site" / "index.html"
    _open(driver, index, view="")
    default = default_task(board)
    assert default == max(sorted(board["tasks"]), key=lambda t: len(board["tasks"][t]))
    visible = _visible_rows(driver)
    assert visible and {tr.get_attribute("data-task") for tr in visible} == {default}
    assert len(visible) == len(board["tasks"][default])
    Select(driver.find_element(By.ID, "filter-task")).select_by_value("cifar10-5")
    driver.find_element(By.CSS_SELECTOR, 'th[data-col="ami"]').click()
    fragment = driver.execute_script("return window.location.hash")
    assert "task=cifar10-5" in fragment and "sort=ami%3Adesc" in fragment
    _open(driver, index, view="task=cifar10-5&labels=superclass&sort=ami:asc")
    wanted = sorted((r for r in board["tasks"]["cifar10-5"] if r["labels"] == "superclass"),
                    key=lambda r: r["committed_ami"])  # fmt: skip
    assert [tr.get_attribute("data-model") for tr in _visible_rows(driver)] == [r["submission"] for r in wanted]
    assert driver.find_element(By.CSS_SELECTOR, 'th[data-col="ami"]').get_attribute("aria-sort") == "ascending"
    _open(driver, index, view="task=%3Cimg%20src%3Dx%3E&sort=nope:up")  # unknown values: ignored, no markup
    assert Select(driver.find_element(By.ID, "filter-task")).first_selected_option.get_attribute("value") == ""
    assert driver.find_elements(By.CSS_SELECTOR, "img") == []


def test_ties_are_explained_where_ranks_are_shown_and_rows_overlay(driver, board_dir, board):
    """A shared rank reads "2=" with a tooltip saying why; ticked rows are overlaid in their board colours, and
    the address keeps them."""
    from selenium.webdriver.common.by import By

    from subclassbench.figures.drawing import model_key, model_style

    index = board_dir / "site" / "index.html"
    _open(driver, index, view="task=")
    rows = [r for task_rows in board["tasks"].values() for r in task_rows]
    assert len({(r["task"], r["rank"]) for r in rows}) < len(rows)  # the shipped board has shared ranks
    for row in rows:
        key = f"{row['task']}/{row['submission']}"
        td = driver.find_element(By.CSS_SELECTOR, f'tr[data-key="{key}"] td[data-col="rank"]')
        sharing = sum(r["task"] == row["task"] and r["rank"] == row["rank"] for r in rows)
        assert td.text == (f"{row['rank']}=" if sharing > 1 else str(row["rank"]))
        assert (td.get_attribute("title") or "").startswith(f"rank {row['rank']} is shared by {sharing} rows") == (
            sharing > 1
        )
    picked = [f"{r['task']}/{r['submission']}" for r in board["tasks"]["cifar10-5"][:2]]
    for key in picked:
        driver.find_element(By.CSS_SELECTOR, f'input.overlay-pick[data-key="{key}"]').click()
    assert driver.find_element(By.ID, "overlay").is_displayed()
    drawn = driver.find_elements(By.CSS_SELECTOR, "#overlay-plot g.overlay-curve")
    assert [g.get_attribute("data-key") for g in drawn] == picked
    for g, row in zip(drawn, board["tasks"]["cifar10-5"][:2], strict=True):
        colour = g.find_element(By.CSS_SELECTOR, "path.overlay-line").get_attribute("stroke")
        assert colour == model_style(model_key(row["encoder"], row.get("weights_sha256")))[0]
    assert "compare=" in driver.execute_script("return window.location.hash")
    assert not any(tr.get_attribute("class").endswith("open") for tr in _visible_rows(driver))  # no row toggled
    _open(driver, index, view="task=cifar10-5&compare=" + ",".join(picked))
    assert len(driver.find_elements(By.CSS_SELECTOR, "#overlay-plot g.overlay-curve")) == 2
    driver.find_element(By.ID, "overlay-clear").click()
    assert not driver.find_element(By.ID, "overlay").is_displayed()
