"""The configuration stage: the typed settings of every later stage (`schema`, whose defaults are the
`standard` preset), how presets and YAML files are read, chained with `base:`, substituted and merged into
one config (`load`), and what makes a value valid, with `ConfigError` explaining in one paragraph any that
is not (`validate`)."""
