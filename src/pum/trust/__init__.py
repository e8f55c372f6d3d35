"""The chain of trust of releases (The Update Framework): keys, signing at the main, checking at subs.

`pum.trust.host` is the host side's (proscanup's) part: stdlib only, Python 3.6-clean. The other modules
are server side (python-tuf, securesystemslib) and are imported only where they are used.
"""

# Where a release carries its signed metadata; served at /.pum/tuf/ (common brief: release-internal files).
TUF_DIR = ".pum/tuf"
