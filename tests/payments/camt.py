"""Builds ISO 20022 camt.053 statements for tests (and the docs' example)."""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape


@dataclass
class Entry:
    amount: str
    currency: str = "CHF"
    indicator: str = "CRDT"
    reference: str | None = None  # structured (ISO 11649) reference
    unstructured: str | None = None
    acct_ref: str = ""
    booked: str = "2026-01-15"
    status: str = "BOOK"


def camt053(entries: list[Entry], *, stmt_id: str = "STMT-1", iban: str = "CH9300762011623852957",
            start: str = "2026-01-15T00:00:00Z", end: str = "2026-01-16T00:00:00Z",
            version: str = "053.001.08", account_currency: str | None = None) -> bytes:
    # An account is kept in one currency, its entries' unless told otherwise.
    account_currency = account_currency or (entries[0].currency if entries else "CHF")
    ntries = []
    for i, e in enumerate(entries, start=1):
        rmt = ""
        if e.reference:
            rmt += (f"<Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry></Tp>"
                    f"<Ref>{escape(e.reference)}</Ref></CdtrRefInf></Strd>")
        if e.unstructured:
            rmt += f"<Ustrd>{escape(e.unstructured)}</Ustrd>"
        ntries.append(f"""
      <Ntry>
        <Amt Ccy="{e.currency}">{e.amount}</Amt>
        <CdtDbtInd>{e.indicator}</CdtDbtInd>
        <Sts><Cd>{e.status}</Cd></Sts>
        <BookgDt><Dt>{e.booked}</Dt></BookgDt>
        <ValDt><Dt>{e.booked}</Dt></ValDt>
        <AcctSvcrRef>{escape(e.acct_ref or f"{stmt_id}-{i}")}</AcctSvcrRef>
        <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd>
        <NtryDtls><TxDtls>
          <Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>
          <RmtInf>{rmt}</RmtInf>
        </TxDtls></NtryDtls>
      </Ntry>""")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.{version}">
  <BkToCstmrStmt>
    <GrpHdr><MsgId>MSG-{stmt_id}</MsgId><CreDtTm>{end}</CreDtTm></GrpHdr>
    <Stmt>
      <Id>{stmt_id}</Id>
      <ElctrncSeqNb>1</ElctrncSeqNb>
      <CreDtTm>{end}</CreDtTm>
      <FrToDt><FrDtTm>{start}</FrDtTm><ToDtTm>{end}</ToDtTm></FrToDt>
      <Acct><Id><IBAN>{iban}</IBAN></Id><Ccy>{account_currency}</Ccy></Acct>{"".join(ntries)}
    </Stmt>
  </BkToCstmrStmt>
</Document>
""".encode()
