"""Amazon Pay (MWS-era "OffAmazonPayments" API): the gateway client, the SNS/IPN check, the local simulator."""
