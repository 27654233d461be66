"""Video conference from the wall, in a real browser: endpoints, the vc stream, 整体联动."""

from __future__ import annotations

import time

import pytest
from selenium.webdriver.common.by import By

from dashboard.devkit.stack import Stack, copy_registry
from datasources.keys import Keys
from tests.integration.test_wall import open_wall, wait_for

TEMPLATE = "https://meet.test.invalid/room-{code}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_db):
    d = tmp_path_factory.mktemp("vcstack")
    db_url, _ = copy_registry(demo_db, d)
    s = Stack(d, db_url, prefix="vc")
    s.env["PINGAN_CONFERENCE_URL"] = TEMPLATE
    s.start_redis()
    s.start_aggregator()
    s.start_web()
    yield s
    s.close()


def vc_entries(stack, topo) -> list[dict]:
    stream = Keys("vc").stream(topo.centres[topo.roots[0]].shard, "vc")
    return [{k.decode(): v.decode() for k, v in f.items()} for _i, f in stack.redis().xrange(stream)]


def test_vc001_call_opens_the_endpoint_and_is_audited(stack, browser, topo):
    root = topo.roots[0]
    child = topo.children[root][1]
    open_wall(browser, stack.url + "/")
    btn = browser.find_element(By.CSS_SELECTOR, f'[data-rank-row="{child}"] .vc-btn')
    btn.click()
    frame = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".vc-overlay:not([hidden]) iframe.vc-frame"), 10)
    assert frame[0].get_attribute("src") == TEMPLATE.format(code=child)
    entries = wait_for(lambda: vc_entries(stack, topo), 5)
    start = entries[-1]
    assert start["action"] == "start" and start["centres"] == child and start["by"]
    # the wall shows who is in a call
    wait_for(lambda: "in-call" in browser.find_element(
        By.CSS_SELECTOR, f'[data-rank-row="{child}"]').get_attribute("class"), 10)
    browser.find_element(By.ID, "vc-end").click()
    wait_for(lambda: vc_entries(stack, topo)[-1]["action"] == "end", 5)
    assert vc_entries(stack, topo)[-1]["cid"] == start["cid"]
    wait_for(lambda: "in-call" not in browser.find_element(
        By.CSS_SELECTOR, f'[data-rank-row="{child}"]').get_attribute("class"), 10)


def test_vc002_group_call_invites_every_child(stack, browser, topo):
    district = "610204"
    open_wall(browser, f"{stack.url}/?centre={district}")
    browser.find_element(By.CSS_SELECTOR, ".vc-btn-group").click()
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".vc-overlay:not([hidden]) [data-invited]"), 10)
    invited = {e.get_attribute("data-invited")
               for e in browser.find_elements(By.CSS_SELECTOR, "[data-invited]")}
    assert invited == set(topo.children[district])
    start = vc_entries(stack, topo)[-1]
    assert start["action"] == "start"
    assert set(start["centres"].split(",")) == set(topo.children[district])
    browser.find_element(By.ID, "vc-end").click()
    wait_for(lambda: vc_entries(stack, topo)[-1]["action"] == "end", 5)


def test_vc003_calls_time_out(stack, topo):
    from datasources.vc import Conferences

    conf = Conferences(stack.redis(), topo, "vc", TEMPLATE, timeout_s=0.5)
    call = conf.start("tester", topo.roots[0], [topo.children[topo.roots[0]][0]], group=False)
    assert call.cid in {c.cid for c in conf.active()}
    time.sleep(0.7)
    assert call.cid not in {c.cid for c in conf.active()}
    last = vc_entries(stack, topo)[-1]
    assert last["cid"] == call.cid and last["action"] == "end" and last["by"] == "timeout"
