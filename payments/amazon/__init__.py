"""Amazon Pay API v2 (Checkout v2): the client Kontor calls Amazon with, the SNS/IPN check, the local simulator."""
