"""The review page in a real browser: Playwright for Python driving Debian's Chromium (headless).

Never runs `playwright install`: it uses /usr/bin/chromium. Without it the test skips (fails in CI).
Screenshots of the grid and the crop view go to test-artifacts/.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from dataset_db.models import Decision, ReviewState
from review_helpers import add_image

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


expect = pytest.importorskip("playwright.sync_api").expect


@pytest.fixture
def server(tmp_path):
    from werkzeug.serving import make_server

    from curation.review.app import create_app
    from dataset_db.bootstrap import open_or_create
    from dataset_db.config import load_settings

    settings = load_settings(db=f"sqlite:///{tmp_path / 'catalog.sqlite'}", store=str(tmp_path / "store"), cwd=tmp_path)
    cat = open_or_create(settings)
    settings.store.mkdir(parents=True)
    ids = [add_image(cat, settings.store, "Ammonoid", size=(400, 300), orig_size=(1600, 1200)) for _ in range(4)]
    app = create_app(cat, settings.store, thumbs=tmp_path / "thumbs")
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_port}", cat, ids
    srv.shutdown()
    cat.close()


@pytest.mark.slow
def test_review_in_browser(server, browser):
    base, cat, ids = server
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/queue/unreviewed?clade=Ammonoid")
    # the reviewer name is asked once and kept in localStorage
    page.fill("#reviewer-name", "Ada")
    page.press("#reviewer-name", "Enter")
    page.wait_for_selector(f'.tile[data-id="{ids[0]}"].current')
    assert page.evaluate("localStorage.getItem('fidReviewer')") == "Ada"
    tile = lambda i: page.locator(f'.tile[data-id="{ids[i]}"]')  # noqa: E731
    # keyboard: accept the first, reject the second with reason 3, undo it, reject with reason 6
    page.keyboard.press("a")
    expect(tile(0)).to_have_class(lambda_cls("state-accepted"))
    page.keyboard.press("r")
    page.wait_for_selector("#reason-menu:not([hidden])")
    page.keyboard.press("3")
    expect(tile(1)).to_have_class(lambda_cls("state-rejected"))
    page.keyboard.press("u")
    expect(tile(1)).to_have_class(lambda_cls("state-unreviewed"))
    expect(tile(1)).to_have_class(lambda_cls("current"))   # undo moved focus back
    page.keyboard.press("r")
    page.keyboard.press("6")
    expect(tile(1)).to_have_class(lambda_cls("state-rejected"))
    page.screenshot(path=str(ARTIFACTS / "review-grid.png"), full_page=True)
    # open the third image by keyboard (focus moved on after the reject)
    page.keyboard.press("Enter")
    page.wait_for_selector(f'#single[data-id="{ids[2]}"][data-ready="1"]')
    # relabel with completion: type a prefix, Tab completes, Enter saves
    page.keyboard.press("e")
    page.keyboard.type("biv")
    page.keyboard.press("Tab")
    assert page.input_value("#relabel") == "Bivalve"
    page.keyboard.press("Enter")
    expect(page.locator("#state")).to_contain_text("Bivalve")
    # draw a crop box with the mouse, then drag its south-east handle, then save with "c"
    box = page.locator(".cropper-canvas").bounding_box()
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x + 0.1 * w, y + 0.2 * h)
    page.mouse.down()
    page.mouse.move(x + 0.3 * w, y + 0.4 * h, steps=5)
    page.mouse.move(x + 0.5 * w, y + 0.6 * h, steps=5)
    page.mouse.up()
    handle = page.locator(".cropper-point.point-se").bounding_box()
    hx, hy = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    page.mouse.move(hx, hy)
    page.mouse.down()
    page.mouse.move(x + 0.7 * w, y + 0.8 * h, steps=8)
    page.mouse.up()
    page.keyboard.press("c")
    expect(page.locator("#state")).to_contain_text("crop")
    page.screenshot(path=str(ARTIFACTS / "review-crop.png"), full_page=True)
    assert errors == []
    with cat.session() as s:
        rows = [(d.image_id, d.decision, d.reason, d.undoes_id is not None)
                for d in s.scalars(select(Decision).where(Decision.reviewer == "Ada").order_by(Decision.id))]
        assert rows == [(ids[0], "accept", None, False), (ids[1], "reject", "drawing_or_reconstruction", False),
                        (ids[1], "reset", None, True), (ids[1], "reject", "poor_quality", False),
                        (ids[2], "relabel", None, False), (ids[2], "crop", None, False)]
        st = s.get(ReviewState, ids[2])
        assert (st.status, st.clade) == ("accepted", "Bivalve")
        # the box was drawn from 10%,20% to 70%,80% of the displayed image: stored in original pixels
        ow, oh = 1600, 1200
        tol = 0.02
        assert abs(st.crop_x0 - 0.1 * ow) <= tol * ow and abs(st.crop_y0 - 0.2 * oh) <= tol * oh
        assert abs(st.crop_x1 - 0.7 * ow) <= tol * ow and abs(st.crop_y1 - 0.8 * oh) <= tol * oh
    assert (ARTIFACTS / "review-grid.png").stat().st_size > 0 and (ARTIFACTS / "review-crop.png").stat().st_size > 0


def lambda_cls(name):
    import re

    return re.compile(rf"(^|\s){re.escape(name)}(\s|$)")
