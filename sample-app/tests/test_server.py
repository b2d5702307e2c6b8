"""sample-app's own tests: the image's `test` stage runs them (`python3 -m unittest`)."""

from __future__ import annotations

import json
import threading
import unittest
import urllib.error
import urllib.request

from app.server import make_server


class ServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.server = make_server("127.0.0.1", 0)
        cls.base = f"http://127.0.0.1:{cls.server.server_address[1]}"
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.shutdown()
        cls.server.server_close()

    def get(self, path: str) -> tuple[int, dict[str, object]]:
        try:
            # S310: the URL is this test's own http://127.0.0.1 server, never user input.
            with urllib.request.urlopen(self.base + path, timeout=5) as response:  # noqa: S310
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def test_health(self) -> None:
        self.assertEqual(self.get("/health"), (200, {"status": "ok"}))

    def test_index_says_where_it_runs(self) -> None:
        status, body = self.get("/")
        self.assertEqual(status, 200)
        self.assertEqual(body["service"], "sample-app")
        self.assertTrue(body["machine"])

    def test_query_strings_are_ignored(self) -> None:
        self.assertEqual(self.get("/health?probe=1")[0], 200)

    def test_unknown_path_is_404(self) -> None:
        status, body = self.get("/nope")
        self.assertEqual(status, 404)
        self.assertEqual(body["path"], "/nope")


if __name__ == "__main__":
    unittest.main()
