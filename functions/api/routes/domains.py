"""GET /domains and /domains/{domainId}."""

from __future__ import annotations

from fastapi import APIRouter

from functions.api.schemas.training import Domain
from functions.domain import catalog
from functions.domain.errors import NotFound
from functions.domain.ids import parse_id

router = APIRouter(tags=["domains"])


@router.get("/domains", response_model=list[Domain])
def list_domains() -> list[Domain]:
    return [Domain.of(d) for d in (*catalog.DOMAINS, *catalog.DETECTION_DOMAINS)]


@router.get("/domains/{domainId}", response_model=Domain)
def get_domain(domainId: str) -> Domain:
    domain = catalog.find_domain(parse_id(domainId, "domainId"))
    if domain is None:
        raise NotFound("NotFoundDomain", f"Domain {domainId} was not found.")
    return Domain.of(domain)
