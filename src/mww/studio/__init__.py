"""The studio (`mww-studio`): a local web app over the stages, for people who would rather click than type.

One page per step of the pipeline (dataset, training, evaluation, export, trying a model), each
calling the same library functions the commands call: ingestion and the generator (`data`,
`synth`), `mww-train` itself in a background process (`train`), `evaluate_model` (`evaluate`),
`convert_model_saved` and `verify_model` (`export`), and the `mww-detect` engine
(`mww.evaluate.listen`). A failing action shows the same one-paragraph `MwwError` message as the
command. The server (`mww.studio.server`) is Python's own `http.server` with plain HTML and
JavaScript pages (`static/`). It may import every stage, as the commands do, and sits beside `cli`.
"""
