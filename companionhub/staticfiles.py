"""Static files in production: hashed names, precompressed, with JavaScript module imports rewritten.

The chat page's script is native ES modules (static/js/chat/) that import each other by relative
path. Under the manifest storage every file gets a hashed name, so ``import "./run.js"`` must
become ``import "./run.<hash>.js"`` or the browser would fetch the unhashed file, which is not
cached for a year and may be an older deploy's. Django rewrites module imports and exports only
when ``support_js_module_import_aggregation`` is set; it is off by default.
"""

from whitenoise.storage import CompressedManifestStaticFilesStorage  # type: ignore[import-untyped]  # no types shipped


class ManifestStaticFilesStorage(CompressedManifestStaticFilesStorage):
    support_js_module_import_aggregation = True
