"""The chunk contract: what every part of the pipeline agrees on about a chunk, in one place.

- :mod:`chunk_contract.names`    the chunk-name allow-list (what may travel into an Argo parameter)
- :mod:`chunk_contract.versions` chunk versions (container, blob name, normalised ETag)
- :mod:`chunk_contract.records`  where a chunk's result or error record lives, and when it is up to date
- :mod:`chunk_contract.naming`   deterministic workflow names and labels of chunk-version sets
- :mod:`chunk_contract.ledger`   the claim ledger in Azure Table Storage (one entity per chunk version)

Imported by the function app (on its cold-start path), by the flow (packaged for the pods through
the ``flows/chunk_contract`` symlink) and by ``sensorctl``. No numpy, no metaflow: the standard
library and the Azure storage SDKs only. ``processing/`` stays the numpy library.
"""
