"""The browser tier: Debian chromium through Playwright against the session's real ComfyUI servers."""

from browser_helpers import browser, checkpoints, console, page, ui, ui_server  # noqa: F401
