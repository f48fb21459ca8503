"""Build, deploy-descriptor and migration tooling (developer machines and CI, never SCF)."""
