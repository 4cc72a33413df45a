"""Config machinery shared by every study: the schema of settings (`schema`). Sections are
declared by their owners (the training layer, each study); this package knows none of them."""
