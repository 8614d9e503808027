"""dittofs: a userspace NFSv3 and SMB2 file server on Twisted."""

__version__ = "0.1.0"
