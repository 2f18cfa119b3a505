"""Which galaxies of a cylinder belong to the cluster: three methods, one boolean per galaxy.

- :class:`MembershipClassifier` -- the Deep Sets classifier (Wang, Thiele & Ho 2026,
  arXiv:2606.12938), a trained model giving a probability per galaxy;
- :func:`shifting_gapper`, :func:`sigma_clipping` -- classical interloper removal;
- :func:`caustic_members` -- the caustic method through ``causticsnupy`` (imported on use).
"""

from pyro_clusters.membership.gapper import shifting_gapper, sigma_clipping

__all__ = ["MembershipClassifier", "MembershipConfig", "caustic_members", "shifting_gapper",
           "sigma_clipping"]


def __getattr__(name: str):
    if name in ("MembershipClassifier", "MembershipConfig"):
        from pyro_clusters.membership import classifier

        return getattr(classifier, name)
    if name == "caustic_members":
        from pyro_clusters.membership.caustic import caustic_members

        return caustic_members
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
