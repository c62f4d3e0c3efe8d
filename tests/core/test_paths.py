from __future__ import annotations

import pytest

from hardenkit._core.paths import route_path


@pytest.mark.parametrize(
    ("path", "root_path", "expected"),
    [
        ("/login", "", "/login"),
        ("/api/login", "/api", "/login"),
        ("/api", "/api", "/"),
        ("/api/", "/api", "/"),
        ("/apiary/x", "/api", "/apiary/x"),
        ("/login", "/api", "/login"),  # a server that already stripped the prefix
        ("/a/b/livez", "/a/b", "/livez"),
    ],
)
def test_route_path_strips_the_root_path_prefix(path: str, root_path: str, expected: str) -> None:
    assert route_path({"path": path, "root_path": root_path}) == expected


def test_route_path_without_keys_is_the_root() -> None:
    assert route_path({}) == "/"
