console.log("gen placeholder")
