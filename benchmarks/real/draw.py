"""Draw a molecule with RDKit and read back exact boxes of what was drawn: atom label glyphs and bond strokes.

RDKit's SVG drawer tags every stroke it draws with the bond (``class='bond-3 atom-2 atom-5'``) and every glyph of an
atom label with its atom (``class='atom-7'``, one path per glyph, FreeType outlines). The PNG comes from the Cairo
drawer with the same options, which lays the molecule out with the same code (the same coordinates, checked against
the SVG in ``tests``-free self check ``check_png_matches``). So a box here is the extent of ink RDKit drew, not a guess.

What can be boxed exactly (see README.md):

- bonds (``Single``, ``Double``, ``Triple``, ``Solid wedge``, ``Hash wedge``): every stroke of the bond (both lines of
  a double bond, all hashes of a hashed wedge), widened by half the line width;
- atom label glyphs: the element symbol (``O``, ``N``, ``S``, ``F``, ``Cl``, ``Br``, ``I``, ``P``, ``H`` for a drawn
  hydrogen atom), the ``H`` of an attached-hydrogen label (``OH``, ``NH``, ``NH2``) and its count (``2``, ``3``).

What cannot: an unlabelled carbon (the vertex where bonds meet has no ink of its own, so no extent; the model's
``C``, ``CH``, ``CH2``, ``CH3`` boxes there follow its training set's annotators' convention), so they are left out.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

#: RDKit bond type and direction -> the model's class name.
BOND_CLASS = {"SINGLE": "Single", "DOUBLE": "Double", "TRIPLE": "Triple", "AROMATIC": "Aromatic"}
WEDGE_CLASS = {"BEGINWEDGE": "Solid wedge", "BEGINDASH": "Hash wedge"}

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_STROKE_WIDTH = re.compile(r"stroke-width:([\d.]+)px")


@dataclass
class DrawOptions:
    """The drawing options that matter to the model; each was chosen by measurement (README.md)."""

    size: int = 640  #: canvas width and height in pixels
    bond_length: float = 55.0  #: RDKit's fixedBondLength: pixels per unit of its 2D coordinates (a bond is 1.5)
    line_width: float = 2.0  #: bondLineWidth
    font_scale: float = 1.5  #: multiplies RDKit's baseFontSize
    bw: bool = True  #: black-and-white atom palette (the model misses coloured N)
    kekulize: bool = True  #: aromatic rings drawn as alternating single/double bonds (else RDKit's dashed style)
    carbon_labels: bool = False  #: draw every carbon's symbol (with its hydrogens) instead of a bare vertex
    # The label convention, in drawn bond lengths (the model's own, measured: README.md). 0, 0, 0 is bare ink.
    bond_trim: float = 0.18  #: a bond's box stops this far short of an unlabelled atom (a bare vertex)
    bond_min_side: float = 0.45  #: a bond's box is widened about its centre to at least this across
    glyph_pad: float = 0.07  #: margin around an atom label's glyphs

    def tag(self) -> str:
        """A short name of these options for folder names and tables."""
        return (
            f"s{self.size}-b{self.bond_length:g}-w{self.line_width:g}-f{self.font_scale:g}"
            f"{'-bw' if self.bw else ''}{'' if self.kekulize else '-arom'}{'-clab' if self.carbon_labels else ''}"
            f"-t{self.bond_trim:g}-m{self.bond_min_side:g}-g{self.glyph_pad:g}"
        )


@dataclass
class Drawing:
    """One drawn molecule: the PNG bytes and its exact labels."""

    png: bytes
    boxes: list[tuple[str, float, float, float, float]] = field(default_factory=list)  #: (class, x1, y1, x2, y2)
    skipped: list[str] = field(default_factory=list)  #: what was drawn but left unlabelled, and why


def _prepared(smiles: str, opts: DrawOptions):
    """The molecule as RDKit will draw it: 2D coordinates, wedges, Kekulé bonds (when asked)."""
    from rdkit import Chem
    from rdkit.Chem import rdDepictor
    from rdkit.Chem.Draw import rdMolDraw2D

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"RDKit cannot parse SMILES {smiles!r}")
    rdDepictor.SetPreferCoordGen(False)
    rdDepictor.Compute2DCoords(mol)
    return rdMolDraw2D.PrepareMolForDrawing(mol, kekulize=opts.kekulize, addChiralHs=True, wedgeBonds=True)


def _drawer(kind: str, opts: DrawOptions, mol):
    from rdkit.Chem.Draw import rdMolDraw2D

    cls = rdMolDraw2D.MolDraw2DSVG if kind == "svg" else rdMolDraw2D.MolDraw2DCairo
    d = cls(opts.size, opts.size)
    o = d.drawOptions()
    o.prepareMolsBeforeDrawing = False  # _prepared did it: the labels read the same bonds that are drawn
    o.fixedBondLength = opts.bond_length
    o.bondLineWidth = opts.line_width
    o.scaleBondWidth = False
    o.baseFontSize = 0.6 * opts.font_scale  # RDKit's default (-1 means 0.6), relative to the bond length
    o.padding = 0.05
    if opts.bw:
        o.useBWAtomPalette()
    if opts.carbon_labels:
        for atom in mol.GetAtoms():
            if atom.GetSymbol() == "C":
                h = atom.GetTotalNumHs()
                o.atomLabels[atom.GetIdx()] = "C" + ("H" if h else "") + (f"<sub>{h}</sub>" if h > 1 else "")
    d.DrawMolecule(mol)
    d.FinishDrawing()
    return d


def _points(d_attr: str) -> list[tuple[float, float]]:
    """Every coordinate pair of an SVG path (M/L/Q/C/Z; RDKit writes absolute commands only)."""
    nums = [float(x) for x in _NUMBER.findall(d_attr)]
    return list(zip(nums[0::2], nums[1::2]))


def _extent(points: list[tuple[float, float]], pad: float = 0.0) -> tuple[float, float, float, float]:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad


def prepared_drawer(smiles: str, opts: DrawOptions):
    """The molecule as drawn and the finished SVG drawer (``GetDrawCoords`` gives an atom's drawn position)."""
    mol = _prepared(smiles, opts)
    return mol, _drawer("svg", opts, mol)


def draw(smiles: str, opts: DrawOptions) -> Drawing:
    """Draw ``smiles`` with ``opts``: the PNG and a box per drawn bond and per atom-label glyph group."""
    mol, svg_drawer = prepared_drawer(smiles, opts)
    svg = svg_drawer.GetDrawingText()
    png = _drawer("png", opts, mol).GetDrawingText()
    drawing = Drawing(png=png)

    bond_points: dict[int, list[tuple[float, float]]] = {}
    bond_width: dict[int, float] = {}
    glyphs: dict[int, list[list[tuple[float, float]]]] = {}
    for el in ET.fromstring(svg).iter():
        cls, d_attr = el.get("class", ""), el.get("d")
        if not cls or d_attr is None:
            continue
        tags = cls.split()
        if tags[0].startswith("bond-"):
            i = int(tags[0][5:])
            bond_points.setdefault(i, []).extend(_points(d_attr))
            w = _STROKE_WIDTH.search(el.get("style", ""))
            bond_width[i] = max(bond_width.get(i, 0.0), float(w.group(1)) if w else 0.0)
        elif tags[0].startswith("atom-") and len(tags) == 1:
            glyphs.setdefault(int(tags[0][5:]), []).append(_points(d_attr))

    unit = bond_length(svg_drawer, mol)
    for bond in mol.GetBonds():
        i = bond.GetIdx()
        if i not in bond_points:
            drawing.skipped.append(f"bond {i}: not drawn")
            continue
        name = WEDGE_CLASS.get(str(bond.GetBondDir())) or BOND_CLASS.get(str(bond.GetBondType()))
        if name is None:
            drawing.skipped.append(f"bond {i}: type {bond.GetBondType()} has no class")
            continue
        ends = [bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()]
        a, b = (svg_drawer.GetDrawCoords(k) for k in ends)
        trims = [0.0 if k in glyphs else opts.bond_trim * unit for k in ends]  # a labelled end is cut by RDKit
        points = _trimmed(bond_points[i], (a.x, a.y), (b.x, b.y), *trims)
        box = _extent(points, bond_width[i] / 2)
        drawing.boxes.append((name, *_widen(box, 0.0, opts.bond_min_side * unit)))

    for i, parts in glyphs.items():
        atom = mol.GetAtomWithIdx(i)
        p = svg_drawer.GetDrawCoords(i)
        labels = _label_boxes(atom, parts, (p.x, p.y), drawing.skipped)
        drawing.boxes.extend((name, *_widen(box, opts.glyph_pad * unit, 0.0)) for name, *box in labels)
    return drawing


def _trimmed(points, a, b, trim_a: float, trim_b: float):
    """``points`` of a bond from ``a`` to ``b``, each moved along the bond to lie ``trim_a`` / ``trim_b`` inside."""
    length = math.dist(a, b)
    ux, uy = (b[0] - a[0]) / length, (b[1] - a[1]) / length
    out = []
    for x, y in points:
        t = (x - a[0]) * ux + (y - a[1]) * uy
        shift = min(max(t, trim_a), length - trim_b) - t
        out.append((x + shift * ux, y + shift * uy))
    return out


def bond_length(drawer, mol) -> float:
    """The drawn bond length in pixels: the median distance between bonded atoms' drawn positions."""
    import statistics

    def at(i):
        p = drawer.GetDrawCoords(i)
        return p.x, p.y

    return statistics.median(math.dist(at(b.GetBeginAtomIdx()), at(b.GetEndAtomIdx())) for b in mol.GetBonds())


def _widen(box, pad: float, min_side: float):
    """``box`` grown by ``pad`` on every side, then each side to at least ``min_side`` about its centre."""
    x1, y1, x2, y2 = box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad
    if x2 - x1 < min_side:
        x1, x2 = (x1 + x2 - min_side) / 2, (x1 + x2 + min_side) / 2
    if y2 - y1 < min_side:
        y1, y2 = (y1 + y2 - min_side) / 2, (y1 + y2 + min_side) / 2
    return x1, y1, x2, y2


def _label_boxes(atom, parts, where, skipped):
    """Boxes of one atom label's glyphs: the element symbol (one box, even for ``Cl``), ``H`` and its count.

    Which glyph is which: RDKit centres the label's element symbol on the atom's drawn position (``where``) and
    writes its letters left to right; of the other glyphs, the hydrogen count is a subscript (the smallest), the
    ``H`` full size. Labels with a charge, isotope or radical are left out (the SMILES list has none); a glyph count
    other than expected is reported, not guessed.
    """
    symbol = atom.GetSymbol()
    h = atom.GetTotalNumHs() if atom.GetAtomicNum() != 1 else 0
    expected = len(symbol) + (h > 0) + (h > 1)
    if atom.GetFormalCharge() or atom.GetIsotope() or atom.GetNumRadicalElectrons() or len(parts) != expected:
        skipped.append(f"atom {atom.GetIdx()} ({symbol}, {h} H, {len(parts)} glyphs): unexpected label")
        return []
    boxes = [_extent(p) for p in parts]
    out = []
    rest = sorted(range(len(boxes)), key=lambda k: boxes[k][0])  # left to right
    if h > 1:
        sub = min(rest, key=lambda k: boxes[k][3] - boxes[k][1])
        out.append((str(h), *boxes[sub]))
        rest.remove(sub)
    # The symbol: the run of len(symbol) consecutive glyphs whose centre is nearest the atom's drawn position.
    runs = [rest[k : k + len(symbol)] for k in range(len(rest) - len(symbol) + 1)]
    sym = min(runs, key=lambda run: _distance(_union([boxes[k] for k in run]), where))
    out.append((symbol, *_union([boxes[k] for k in sym])))
    out.extend(("H", *boxes[k]) for k in rest if k not in sym)
    return out


def _union(boxes):
    return min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)


def _distance(box, point):
    return ((box[0] + box[2]) / 2 - point[0]) ** 2 + ((box[1] + box[3]) / 2 - point[1]) ** 2
