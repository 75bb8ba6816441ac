"""Regenerate smiles.csv, the committed molecule list, from the NCI sample that ships inside RDKit's wheel.

The source is ``rdkit/Data/NCI/first_5K.smi`` (the first 5,000 structures of the NCI Open Database, public data of
the US National Cancer Institute's Developmental Therapeutics Program, shipped by RDKit as test data). The filter
keeps drug-like, exactly labellable molecules: one fragment, 12 to 40 heavy atoms, at least one ring, only the
elements C N O S F Cl Br I, no charge, isotope or radical (their labels carry glyphs the labeller does not split),
and a drawing (draw.py's default options) with nothing the labeller leaves out (an NCI cage compound gets
overlapping atom labels). Then every k-th survivor, so that sizes and chemotypes spread over the whole file. Run
once; the output is committed, so the dataset does not change with RDKit's sample file (about 2 minutes)::

    python benchmarks/real/make_smiles.py > benchmarks/real/smiles.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

COUNT = 300
ELEMENTS = {"C", "N", "O", "S", "F", "Cl", "Br", "I"}


def keep(mol) -> bool:
    """Whether ``mol`` passes the filter above."""
    atoms = list(mol.GetAtoms())
    return (
        12 <= mol.GetNumHeavyAtoms() <= 40
        and mol.GetRingInfo().NumRings() > 0
        and all(a.GetSymbol() in ELEMENTS for a in atoms)
        and not any(a.GetFormalCharge() or a.GetIsotope() or a.GetNumRadicalElectrons() for a in atoms)
    )


def main() -> None:
    """Print the filtered, thinned list as CSV (with its provenance in ``#`` lines) on stdout."""
    from rdkit import Chem, RDConfig, RDLogger, rdBase

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from draw import DrawOptions, draw

    RDLogger.DisableLog("rdApp.*")

    source = Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"
    survivors, seen = [], set()
    for line in source.read_text(encoding="utf-8").splitlines():
        smiles, nci_id = line.split()[:2]
        if "." in smiles:
            continue
        mol = Chem.MolFromSmiles(smiles)
        if mol is None or not keep(mol):
            continue
        canonical = Chem.MolToSmiles(mol)
        if canonical not in seen:
            seen.add(canonical)
            survivors.append((nci_id, canonical))
    survivors = [(i, smi) for i, smi in survivors if not draw(smi, DrawOptions()).skipped]
    step = len(survivors) / COUNT
    print(f"# {COUNT} of {len(survivors)} filtered molecules of rdkit {rdBase.rdkitVersion}'s Data/NCI/{source.name}")
    print("# (NCI Open Database sample shipped with RDKit), made by benchmarks/real/make_smiles.py; nci_id is the")
    print("# structure's id in that file, smiles RDKit's canonical SMILES. Every third row (0, 3, ...) is in val.")
    print("nci_id,smiles")
    for k in range(COUNT):
        nci_id, smiles = survivors[int(k * step)]
        print(f"{nci_id},{smiles}")


if __name__ == "__main__":
    main()
