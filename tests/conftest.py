pytest_plugins = ["resilient_http.testing.pytest_plugin"]
