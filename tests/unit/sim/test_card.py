"""The simulated card runs the personalisation script of DESIGN §5.4 and ends holding the number."""

from esimota.ota import personalise as P
from esimota.sim.card import ADF, MF, Applet, CardFiles

NUM = P.Personalisation(iccid="8986001234567890123F"[:19] + "4", imsi="460001234567893", msisdn="1440012345678",
                        ki=bytes(range(16)), opc=bytes(range(16, 32)))
DEK = bytes(range(100, 116))


def _run(applet: Applet, apdus) -> list[bytes]:
    return [applet.execute(a) for a in apdus]


def test_script_writes_every_file_and_keys():
    files = CardFiles()
    applet = Applet(files, DEK)
    script = P.build(NUM, DEK)
    answers = _run(applet, script.apdus)
    assert all(r[-2:] == b"\x90\x00" for r in answers)
    assert answers[19][:-2] == P.ef_iccid(NUM.iccid) and answers[22][:-2] == P.ef_imsi(NUM.imsi)
    assert files.read(MF, 0x2FE2) == P.ef_iccid(NUM.iccid)
    assert files.read(ADF, 0x6F07) == P.ef_imsi(NUM.imsi)
    assert files.read(ADF, 0x6F78) == b"\x00\x08"
    assert files.read(ADF, 0x6F40)[:14] == P.ef_msisdn(NUM.msisdn)
    assert files.read(ADF, 0x6F7E) == P.LOCI_RESET
    assert applet.committed and (applet.ki, applet.opc) == (NUM.ki, NUM.opc)


def test_rerun_is_idempotent():
    files = CardFiles()
    applet = Applet(files, DEK)
    script = P.build(NUM, DEK)
    _run(applet, script.apdus)
    before = {k: bytes(v.data) for k, v in files.files.items()}
    assert all(r[-2:] == b"\x90\x00" for r in _run(applet, script.apdus))
    assert {k: bytes(v.data) for k, v in files.files.items()} == before


def test_chip_fault_answers_6581_on_updates():
    applet = Applet(CardFiles(), DEK, chip_fault=True)
    script = P.build(NUM, DEK)
    answers = _run(applet, script.apdus[:3])
    assert answers[:2] == [b"\x90\x00", b"\x90\x00"] and answers[2] == b"\x65\x81"


def test_wrong_dek_is_refused():
    applet = Applet(CardFiles(), bytes(16))
    script = P.build(NUM, DEK)
    assert applet.execute(script.apdus[16]) == b"\x6A\x80"
    assert applet.execute(script.apdus[23]) == b"\x69\x85"


def test_bad_apdus_get_status_words_not_exceptions():
    applet = Applet(CardFiles(), DEK)
    assert applet.execute(b"\x00") == b"\x67\x00"
    assert applet.execute(bytes.fromhex("00A4000C021234")) == b"\x6A\x82"
    assert applet.execute(bytes.fromhex("00D6000002AABB")) == b"\x69\x86"  # no EF selected
    assert applet.execute(bytes.fromhex("00B0000005")) == b"\x69\x86"
    assert applet.execute(bytes.fromhex("00FF0000")) == b"\x6D\x00"
    assert applet.execute(bytes.fromhex("A0A40000")) == b"\x6E\x00"
    applet.execute(bytes.fromhex("00A4000C023F00"))
    applet.execute(bytes.fromhex("00A4000C022FE2"))
    assert applet.execute(bytes.fromhex("00D600000C" + "00" * 12)) == b"\x6B\x00"  # past the end
    assert applet.execute(bytes.fromhex("00D600000500")) == b"\x67\x00"  # Lc disagrees


def _header_variant(field: str) -> bytes:
    """A command packet the platform would send (DESIGN §5.3), with one clear header field changed."""
    from esimota.codec import packet

    kic, kid = bytes(range(16)), bytes(range(16, 32))
    args = {"spi": packet.SPI_BCP, "kic_byte": packet.KIC_BCP, "kid_byte": packet.KID_BCP}
    tar = b"\x45\x57\x41"
    if field == "spi":
        args["spi"] = 0x1601  # CC only, no ciphering
    elif field == "kid":
        args["kid_byte"] = 0x1A  # b4b3 = 10: reserved coding (TS 102 225 §5.1.3.1)
    elif field == "kic":
        args["kic_byte"] = 0x15  # 3DES
    elif field == "tar":
        tar = b"\x00\x00\x01"
    body = bytearray(packet.wrap_command(kic, kid, tar, 1, b"\xAA\x00", **args))
    if field == "chl":
        body[2] = 0x16
    return bytes(body)


def test_card_opens_only_the_design_command_header():
    """DESIGN §5.3: CHL '15', SPI '16 19', KIc '12', KID '12', TAR '45 57 41'; anything else is refused
    with a TS 102 225 table 5.2 status before the card tries to open it."""
    from esimota.sim.card import command_refusal

    assert command_refusal(_header_variant("none")) is None
    assert _header_variant("none")[2:10].hex() == "1516191212455741"
    assert command_refusal(_header_variant("tar")) == 0x09
    assert command_refusal(_header_variant("spi")) == 0x0A
    assert command_refusal(_header_variant("chl")) == 0x0A
    assert command_refusal(_header_variant("kid")) == 0x06
    assert command_refusal(_header_variant("kic")) == 0x06
    assert command_refusal(b"\x00\x10\x15") == 0x06  # cut short
