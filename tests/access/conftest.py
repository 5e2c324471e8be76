from tests.support.browser import browser, http_base_url

__all__ = ["browser", "http_base_url"]
