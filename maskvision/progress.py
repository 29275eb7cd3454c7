"""Progress bars for the library's long loops (feature extraction, k-NN, the linear-probe sweep, tokenizer
inspection): tqdm, shown on a terminal only, so logs and pipes stay clean, and never when a caller asks for quiet.

A leaf module: every layer may import it.
"""

from tqdm.auto import tqdm


def progress_bar(iterable=None, *, enabled: bool = True, **kwargs) -> tqdm:
    """``tqdm(iterable, **kwargs)``, drawn only when ``enabled`` and its stream (stderr) is a terminal: tqdm's
    ``disable=None`` leaves it out when the stream is a file or a pipe."""
    return tqdm(iterable, disable=None if enabled else True, **kwargs)


__all__ = ["progress_bar"]
