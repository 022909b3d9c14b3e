"""Use cases of the inference app, one subject per module; each function is one thing the site does.

Read them in the order a feature vector travels:

- ``registry``: the CNN model versions and the heads (categories) that score its features.
- ``streaming``: a viewer's page opens a session, is assigned sample times and stores features.
- ``settlement``: a worker's pass over a video: verify pending features (``inference.trust``),
  compute verdicts (``analysis``), confirm flags with the server, announce them (signals).
- ``analysis``: heads turn accepted features into per-sample scores and one verdict per head.
- ``flag_confirmation``: a larger network, run by the server on the frames it decoded itself, confirms a
  head's flag (nudity) before a case opens.
- ``server_features``: the server's own features of a rendition's frames (PyAV + Keras).
- ``training``: labelled sequences and temporal heads trained on them.

Names are imported from their module (``from inference.services import streaming``); this
package re-exports nothing.
"""
