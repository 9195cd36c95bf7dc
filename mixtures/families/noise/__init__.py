"""A uniform noise component for any family (mclust's ``Vinv``): ``NoisyMixture(base, region)``.

Modules: ``model`` (the wrapper family, written only against the protocol: the program's
pieces are the wrapped family's plus the noise's density, EM through the wrapped family's
statistics), ``params`` (``NoisyParams``: the wrapped parameters with the noise last) and
``region`` (``NoiseRegion``: bounding box, convex hull or a given volume).
"""

from mixtures.families.noise.model import NoiseComponent, NoisyMixture
from mixtures.families.noise.params import NoisyParams
from mixtures.families.noise.region import NoiseRegion

__all__ = ["NoisyMixture", "NoisyParams", "NoiseRegion", "NoiseComponent"]
