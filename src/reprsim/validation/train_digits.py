"""A deep, narrow fully connected classifier on scikit-learn's digits, trained deterministically per seed.

Kornblith et al. 2019 used deep narrow networks because that is where CCA-type measures fail to find
corresponding layers. Training is deterministic (see `reprsim.validation.train_common.deterministic_torch`).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from reprsim.validation.train_common import TrainedNetwork, deterministic_torch


@dataclass(frozen=True)
class MLPConfig:
    """Shape and training schedule of the digits classifier.

    Attributes
    ----------
    hidden_layers : int, default 6
        The number of hidden layers (at least 1).
    width : int, default 128
        Units per hidden layer (at least 1).
    batch_norm : bool, default True
        Batch normalisation after each hidden Linear layer (see `DigitsMLP`).
    epochs : int, default 30
        Training epochs.
    batch_size : int, default 64
        Minibatch size.
    lr : float, default 1e-3
        Adam learning rate.
    test_fraction : float, default 0.4
        The held-out share of the digits, in (0, 1).
    split_seed : int, default 0
        The seed of the train / held-out split (the same for every network seed).
    """

    hidden_layers: int = 6
    width: int = 128
    batch_norm: bool = True
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    test_fraction: float = 0.4
    split_seed: int = 0


@dataclass(frozen=True)
class DigitsData:
    """Standardised digits features, split once, identically for every seed.

    Attributes
    ----------
    x_train, y_train : torch.Tensor
        Training features (float32, ``(n_train, 64)``) and class labels (int64).
    x_test, y_test : torch.Tensor
        Held-out features and labels.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_digits_split(test_fraction: float, split_seed: int) -> DigitsData:
    """Split scikit-learn's digits into train and held-out parts, stratified by class.

    Features are standardised with the training part's statistics (constant pixels keep scale 1) so that a
    plain ReLU MLP trains without normalisation layers.

    Parameters
    ----------
    test_fraction : float
        The held-out share, in (0, 1).
    split_seed : int
        The seed of the split.

    Returns
    -------
    DigitsData
        The standardised split.

    Raises
    ------
    ValueError
        If `test_fraction` is not in (0, 1).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=split_seed, stratify=y)
    mean = x_tr.mean(axis=0)
    std = x_tr.std(axis=0)
    std[std == 0] = 1.0
    return DigitsData(
        x_train=torch.from_numpy((x_tr - mean) / std).float(),
        y_train=torch.from_numpy(y_tr).long(),
        x_test=torch.from_numpy((x_te - mean) / std).float(),
        y_test=torch.from_numpy(y_te).long(),
    )


class DigitsMLP(nn.Module):
    """A deep narrow digits classifier: Linear(+BatchNorm)+ReLU blocks of equal width, then a linear readout.

    Batch normalisation is on by default: without it deep narrow ReLU networks train poorly on digits and
    their deeper layers collapse into one block of near-identical representations (Kornblith et al.'s
    "pathological depth"), which is a property of the training, not of the measures.

    Parameters
    ----------
    n_inputs : int
        The number of input features.
    config : MLPConfig
        The shape: `MLPConfig.hidden_layers` blocks of `MLPConfig.width` units, readout to 10 classes.

    Raises
    ------
    ValueError
        If the config asks for no hidden layer or zero width.
    """

    def __init__(self, n_inputs: int, config: MLPConfig) -> None:
        super().__init__()
        if config.hidden_layers < 1 or config.width < 1:
            raise ValueError(
                f"MLP needs hidden_layers >= 1 and width >= 1, got {config.hidden_layers} and {config.width}"
            )
        widths = [n_inputs] + [config.width] * config.hidden_layers
        self.hidden = nn.ModuleList(
            nn.Sequential(nn.Linear(a, b), nn.BatchNorm1d(b) if config.batch_norm else nn.Identity(), nn.ReLU())
            for a, b in pairwise(widths)
        )
        self.readout = nn.Linear(config.width, 10)

    def hidden_states(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Compute the post-ReLU output of every hidden layer (the logits are excluded, as in Kornblith et al.).

        Parameters
        ----------
        x : torch.Tensor
            A batch of inputs, ``(batch, n_inputs)``.

        Returns
        -------
        list of torch.Tensor
            One ``(batch, width)`` tensor per hidden layer, input side first.
        """
        states = []
        for layer in self.hidden:
            x = layer(x)
            states.append(x)
        return states

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute the class logits, ``(batch, 10)``."""
        return self.readout(self.hidden_states(x)[-1])


def train_digits_mlp(
    data: DigitsData,
    config: MLPConfig,
    seed: int,
    threads: int = 1,
    progress: bool = True,
    setting: str = "digits-mlp",
) -> TrainedNetwork:
    """Train one digits MLP; the seed sets both the initial weights and the minibatch order.

    Training is deterministic (see `deterministic_torch`): the same seed gives bit-identical weights.

    Parameters
    ----------
    data : DigitsData
        The split (see `load_digits_split`).
    config : MLPConfig
        The shape and schedule.
    seed : int
        The seed.
    threads : int, default 1
        Torch CPU threads.
    progress : bool, default True
        Show a progress bar over epochs.
    setting : str, default "digits-mlp"
        The label of the network in results tables.

    Returns
    -------
    TrainedNetwork
        The hidden layers' activations on the held-out digits (layer ids 1..L) and the test accuracy.
    """
    with deterministic_torch(seed, threads):
        model = DigitsMLP(data.x_train.shape[1], config)
        optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
        order_rng = torch.Generator().manual_seed(seed)
        n = data.x_train.shape[0]
        for _ in tqdm(range(config.epochs), desc=f"{setting} seed {seed}", leave=False, disable=not progress):
            model.train()
            for batch in torch.randperm(n, generator=order_rng).split(config.batch_size):
                if len(batch) < 2:  # batch norm needs two rows; the order is seeded, so this is reproducible
                    continue
                loss = F.cross_entropy(model(data.x_train[batch]), data.y_train[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        model.eval()
        with torch.no_grad():
            states = model.hidden_states(data.x_test)
            accuracy = float((model.readout(states[-1]).argmax(1) == data.y_test).float().mean())
    return TrainedNetwork(
        setting=setting,
        seed=seed,
        layers=[s.numpy().copy() for s in states],
        layer_ids=list(range(1, len(states) + 1)),
        metric_name="test accuracy",
        metric=accuracy,
        state={k: v.detach().clone() for k, v in model.state_dict().items()},
    )
