"""The application's version: what OTA bundles compare against (tools/ota.py writes this
module into every bundle with the bundle's version)."""

VERSION = "0.1.0"
