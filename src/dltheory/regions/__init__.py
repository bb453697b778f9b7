"""Linear regions of ReLU networks: exact counts, bounds, constructions, density at init.

* :func:`count_pieces_1d`: exact pieces on a segment [a, b] (breakpoints traced layer by layer);
* :func:`regions_2d`, :func:`plot_regions_2d`: exact regions on a 2-D slice, as polygons;
* :func:`zaslavsky_count`, :func:`pattern_bound`, :func:`one_layer_1d_bound`: counting bounds;
* :func:`sawtooth`: Telgarsky's network with exactly 2^L pieces on [0, 1];
* :func:`density_prediction`, :func:`region_density`: pieces per unit length at
  initialisation, Kac-Rice prediction and a bound in the form of Hanin & Rolnick's
  theorem (with C_grad = E|z'|) vs measurement.

Sources: Zaslavsky (1975), Telgarsky (2016), Hanin & Rolnick (2019).
"""

from .bounds import one_layer_1d_bound, pattern_bound, zaslavsky_count
from .count_1d import Pieces1D, count_pieces_1d
from .density import DensityPrediction, RegionDensity, density_prediction, region_density
from .network import HiddenLayer, PiecewiseLinearNet, piecewise_linear_layers
from .sawtooth import sawtooth, sawtooth_reference
from .slices_2d import Regions2D, plot_regions_2d, regions_2d

__all__ = [
    "DensityPrediction",
    "HiddenLayer",
    "Pieces1D",
    "PiecewiseLinearNet",
    "RegionDensity",
    "Regions2D",
    "count_pieces_1d",
    "density_prediction",
    "one_layer_1d_bound",
    "pattern_bound",
    "piecewise_linear_layers",
    "plot_regions_2d",
    "region_density",
    "regions_2d",
    "sawtooth",
    "sawtooth_reference",
    "zaslavsky_count",
]
