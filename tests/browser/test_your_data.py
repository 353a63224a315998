"""Your data, as a user meets it: export the account and download it, then delete the account."""

from __future__ import annotations

import json
import uuid
import zipfile

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import shoot
from tests.browser.test_journey import create_companion, register

pytestmark = pytest.mark.browser

PASSWORD = "a-long-secret-pass"


def test_export_my_data_then_delete_my_account(page):
    name = f"u{uuid.uuid4().hex[:8]}"
    register(page, name, screenshots=False)
    create_companion(page, "Ren", screenshots=False)

    page.goto("/accounts/profile/")
    page.get_by_role("button", name="Export my data").click()
    expect(page.locator(".messages")).to_contain_text("being prepared")
    link = page.locator("[data-export-download]")
    expect(link).to_be_visible(timeout=30_000)  # the poll reloads the page once it is ready
    shoot(page, "profile-export-ready-desktop")
    with page.expect_download() as caught:
        link.click()
    with zipfile.ZipFile(caught.value.path()) as zf:
        counts = json.loads(zf.read("manifest.json"))["counts"]
    assert counts["companions"] == 1 and counts["conversations"] == 1

    page.get_by_role("link", name="Delete my account…").click()
    page.get_by_label("Your password").fill("not my password")
    page.get_by_role("button", name="Delete my account").click()
    expect(page.locator(".form-errors, .errorlist").first).to_contain_text("not your password")
    shoot(page, "account-delete-desktop")
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Delete my account").click()
    expect(page).to_have_url("/")
    expect(page.locator(".messages")).to_contain_text("Your account is deleted")
    expect(page.get_by_role("link", name="Create an account").first).to_be_visible()

    # Signed out for good: the name no longer signs in.
    page.goto("/accounts/login/")
    page.get_by_label("Username or email").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("body")).to_contain_text("do not match an account")
