"""proscanup: the updater on scanner hosts (modules, VDF through freshclam, post_update.sh, upgrades)."""
