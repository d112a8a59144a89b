"""Tiny plates in instrument layouts, written by the tests: file names, metadata files, TIFFs.

Each pixel plane is a constant ``value(well, site, channel, z, t)`` so a test can tell
from one pixel which file a field was read from. Planes are 8 x 8 uint16.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tifffile

SHAPE = (8, 8)


def value(row: int, col: int, site: int, ch: int, z: int = 1, t: int = 1) -> int:
    """The constant pixel value of a plane (all numbers as the instrument counts them)."""
    return row * 1000 + col * 100 + site * 10 + ch + z * 3000 + t * 20000


def plane(v: int, path: Path, description: str | None = None) -> None:
    """Write one constant plane; a ``<MetaData>`` description is stamped as MetaXpress does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    software = "MetaSeries" if description and description.startswith("<MetaData>") else None
    tifffile.imwrite(path, np.full(SHAPE, v, np.uint16), description=description,
                     software=software, metadata=None)


def imagexpress(root: Path, *, names=("DAPI", "FITC"), wells=((2, 3), (4, 7)), sites=2, zs=1,
                tps=1, ext=".TIF", htd=True, guid=True, nested=True) -> Path:
    """An ImageXpress / MetaXpress folder: ``PLATE.HTD`` and ``TimePoint_n[/ZStep_k]`` TIFFs."""
    root.mkdir(parents=True)
    if htd:
        lines = ['"HTSInfoFile", Version 1.0', '"Description", "test plate"',
                 f'"TimePoints", {tps}', f'"ZSeries", {"TRUE" if zs > 1 else "FALSE"}',
                 f'"ZSteps", {zs}', '"XWells", 12', '"YWells", 8',
                 f'"XSites", {sites}', '"YSites", 1', f'"NWavelengths", {len(names)}']
        lines += [f'"WaveName{i}", "{n}"' for i, n in enumerate(names, 1)]
        (root / "PLATE.HTD").write_text("\r\n".join(lines) + "\r\n")
    g = "_9E84F49F-1B25-4E7E-8040-D1BB2D7E73EA" if guid else ""
    for t in range(1, tps + 1):
        for z in range(1, zs + 1):
            folder = root
            if nested:
                folder = root / f"TimePoint_{t}"
                if zs > 1:
                    folder = folder / f"ZStep_{z}"
            for r, c in wells:
                well = f"{chr(64 + r)}{c:02d}"
                for s in range(1, sites + 1):
                    for ch in range(1, len(names) + 1):
                        plane(value(r, c, s, ch, z, t), folder / f"PLATE_{well}_s{s}_w{ch}{g}{ext}")
            if nested and zs > 1:  # MetaXpress's own projection beside the ZStep folders
                for r, c in wells:
                    plane(1, root / f"TimePoint_{t}" / f"PLATE_{chr(64 + r)}{c:02d}_s1_w1{ext}")
    return root


HARMONY_NS = "http://www.perkinelmer.com/PEHH/HarmonyV6"


def harmony(root: Path, *, names=("HOECHST 33342", "Alexa 488"), wells=((2, 3),), fields=2,
            planes=3, index="Index.idx.xml", pixel_m=6.5e-7) -> Path:
    """An Opera/Operetta Harmony export: ``Images/Index.idx.xml`` + ``r02c03f01p01-ch1…`` TIFFs."""
    img = root / "Images"
    img.mkdir(parents=True)
    entries = "".join(
        f'<Entry ChannelID="{i}"><ChannelName>{n}</ChannelName>'
        f'<ImageResolutionX Unit="m">{pixel_m}</ImageResolutionX>'
        f'<ImageResolutionY Unit="m">{pixel_m}</ImageResolutionY>'
        f'<MainEmissionWavelength Unit="nm">{456 if i == 1 else 525}</MainEmissionWavelength></Entry>'
        for i, n in enumerate(names, 1)
    )
    images = []
    for r, c in wells:
        for f in range(1, fields + 1):
            for p in range(1, planes + 1):
                for ch in range(1, len(names) + 1):
                    url = f"r{r:02d}c{c:02d}f{f:02d}p{p:02d}-ch{ch}sk1fk1fl1.tiff"
                    plane(value(r, c, f, ch, p), img / url)
                    images.append(
                        f'<Image Version="1"><id>{r:02d}{c:02d}K1F{f}P{p}R{ch}</id><State>Ok</State>'
                        f"<URL>{url}</URL><Row>{r}</Row><Col>{c}</Col><FieldID>{f}</FieldID>"
                        f"<PlaneID>{p}</PlaneID><TimepointID>0</TimepointID><ChannelID>{ch}</ChannelID>"
                        f"<ChannelName>{names[ch - 1]}</ChannelName></Image>"
                    )
    xml = (
        f'<?xml version="1.0" encoding="utf-8"?><EvaluationInputData xmlns="{HARMONY_NS}" Version="2">'
        f"<Plates><Plate><PlateID>p1</PlateID><PlateRows>8</PlateRows><PlateColumns>12</PlateColumns></Plate></Plates>"
        f"<Maps><Map>{entries}</Map></Maps><Images>{''.join(images)}</Images></EvaluationInputData>"
    )
    (img / index).write_text(xml, encoding="utf-8")
    return root


BTS = "http://www.yokogawa.co.jp/BTS/BTSSchema/1.0"


def cellvoyager(root: Path, *, targets=("DAPI", "GFP"), wells=((2, 3), (3, 5)), fields=2,
                zs=1, mes=True, pixel_um=0.325) -> Path:
    """A CellVoyager measurement: ``MeasurementData.mlf``, ``MeasurementDetail.mrf``, ``.mes``."""
    root.mkdir(parents=True)
    recs = []
    for r, c in wells:
        for f in range(1, fields + 1):
            for z in range(1, zs + 1):
                for ch in range(1, len(targets) + 1):
                    name = f"AssayPlate_{chr(64 + r)}{c:02d}_T0001F{f:03d}L01A01Z{z:02d}C{ch:02d}.tif"
                    plane(value(r, c, f, ch, z), root / name)
                    recs.append(
                        f'<bts:MeasurementRecord bts:Time="2024-01-01T00:00:00" bts:Type="IMG" '
                        f'bts:TileXIndex="1" bts:TileYIndex="1" bts:Row="{r}" bts:Column="{c}" '
                        f'bts:FieldIndex="{f}" bts:ZIndex="{z}" bts:TimePoint="1" bts:TimelineIndex="1" '
                        f'bts:ActionIndex="1" bts:Action="3D" bts:X="0" bts:Y="0" bts:Z="0" '
                        f'bts:Ch="{ch}">{name}</bts:MeasurementRecord>'
                    )
    recs.append('<bts:MeasurementRecord bts:Type="ERR" bts:Row="1" bts:Column="1" bts:FieldIndex="1" '
                'bts:TimePoint="1">failed</bts:MeasurementRecord>')
    (root / "MeasurementData.mlf").write_text(
        f'<?xml version="1.0" encoding="utf-8"?><bts:MeasurementData xmlns:bts="{BTS}" '
        f'bts:Version="1.0">{"".join(recs)}</bts:MeasurementData>', encoding="utf-8")
    chans = "".join(
        f'<bts:MeasurementChannel bts:Ch="{i}" bts:HorizontalPixelDimension="{pixel_um}" '
        f'bts:VerticalPixelDimension="{pixel_um}" bts:HorizontalPixels="8" bts:VerticalPixels="8"/>'
        for i in range(1, len(targets) + 1)
    )
    (root / "MeasurementDetail.mrf").write_text(
        f'<?xml version="1.0" encoding="utf-8"?><bts:MeasurementDetail xmlns:bts="{BTS}" '
        f'bts:Version="1.0" bts:MeasurementSettingFileName="assay.mes" bts:FieldCount="{fields}" '
        f'bts:ZCount="{zs}">{chans}</bts:MeasurementDetail>', encoding="utf-8")
    if mes:
        ch_xml = "".join(f'<bts:Channel bts:Ch="{i}" bts:Target="{t}" bts:Fluorophore="x"/>'
                         for i, t in enumerate(targets, 1))
        (root / "assay.mes").write_text(
            f'<?xml version="1.0" encoding="utf-8"?><bts:MeasurementSetting xmlns:bts="{BTS}" '
            f'bts:Version="1.0"><bts:ChannelList>{ch_xml}</bts:ChannelList></bts:MeasurementSetting>',
            encoding="utf-8")
    return root


def imagexpress_jdce(root: Path, *, names=("DAPI", "TexasRed"), wells=("B03",), sites=2) -> Path:
    """A newer ImageXpress acquisition (read by bioio-imagexpress): ``.jdce`` + manifest CSV."""
    root.mkdir(parents=True)
    jdce = {"ImageStack": {"AutoLeadAcquisitionProtocol": {
        "ObjectiveCalibration": {"PixelWidth": 0.68, "PixelHeight": 0.68, "ObjectiveName": "20X"},
        "Wavelengths": [{"Index": i, "EmissionFilter": {"Name": n}} for i, n in enumerate(names, 1)],
    }}}
    (root / "acq.jdce").write_text(json.dumps(jdce))
    rows = ["Well,Field,Wavelength,Timepoint,ZIndex,ImageSubFolderPath,ImageFileName"]
    for well in wells:
        r, c = ord(well[0]) - 64, int(well[1:])
        for s in range(1, sites + 1):
            for ch in range(1, len(names) + 1):
                fn = f"{well}_s{s}_w{ch}.tif"
                plane(value(r, c, s, ch), root / "timepoint1" / fn)
                rows.append(f"{well},{s},{ch},1,1,timepoint1,{fn}")
    (root / "image_metadata_1.csv").write_text("\n".join(rows) + "\n")
    return root
