//! GTIN barcodes: EAN-13 and UPC-A with their check digit.
//!
//! Source of the rule: GS1 General Specifications, section 7.9 (check digit calculation
//! for GTIN-8/12/13/14): weights 3 and 1 alternate from the rightmost data digit.

/// Why a barcode was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BarcodeError {
    /// Not 12 (UPC-A) or 13 (EAN-13) ASCII digits.
    #[error("barcode {0:?} is not 12 (UPC-A) or 13 (EAN-13) digits")]
    BadLength(String),
    /// The last digit does not match the GS1 check digit of the others.
    #[error("barcode {code:?} has check digit {found}, expected {expected}")]
    BadCheckDigit {
        /// The code as given.
        code: String,
        /// Its last digit.
        found: u8,
        /// The digit GS1's rule gives.
        expected: u8,
    },
}

/// Validates a UPC-A or EAN-13 code and returns it normalised to 13 digits
/// (a UPC-A code gets a leading `0`, as GS1 defines).
///
/// # Errors
/// [`BarcodeError`] when the length or the check digit is wrong.
pub fn normalize_gtin(code: &str) -> Result<String, BarcodeError> {
    let code = code.trim();
    if !(code.len() == 12 || code.len() == 13) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BarcodeError::BadLength(code.to_string()));
    }
    let digits: Vec<u8> = code.bytes().map(|b| b - b'0').collect();
    let (data, check) = digits.split_at(digits.len() - 1);
    let expected = check_digit(data);
    if check[0] != expected {
        return Err(BarcodeError::BadCheckDigit {
            code: code.to_string(),
            found: check[0],
            expected,
        });
    }
    Ok(if code.len() == 12 {
        format!("0{code}")
    } else {
        code.to_string()
    })
}

/// The GS1 check digit of the data digits (all but the check digit).
pub fn check_digit(data: &[u8]) -> u8 {
    let sum: u32 = data
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| u32::from(*d) * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_codes() {
        assert_eq!(normalize_gtin("4006381333931").unwrap(), "4006381333931"); // EAN-13
        assert_eq!(normalize_gtin("036000291452").unwrap(), "0036000291452"); // UPC-A
    }

    #[test]
    fn refuses_bad_codes() {
        assert!(matches!(
            normalize_gtin("4006381333932"),
            Err(BarcodeError::BadCheckDigit { expected: 1, .. })
        ));
        assert!(matches!(normalize_gtin("12345"), Err(BarcodeError::BadLength(_))));
        assert!(matches!(
            normalize_gtin("40063813339x1"),
            Err(BarcodeError::BadLength(_))
        ));
    }
}
