"""Data-manager tools: ingest and de-identification, rater agreement and consensus, and
participant-split HDF5 datasets. Plain Python: never imports napari or Qt."""
