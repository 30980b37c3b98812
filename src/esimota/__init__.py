"""esimota: the IoT eSIM over-the-air write platform of T/CIAD 物联网 eSIM 空中写卡技术应用服务规范."""

__version__ = "0.1.0"
